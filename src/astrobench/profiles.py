"""Every profile's scale in one table per stage (DESIGN section 4): a profile changes how much runs,
never the algorithm. A method or dataset plugin may add its own per-profile options (``profiles``
and ``training`` class attributes); these are the run-wide ones.

- ``smoke``: tests and CI, seconds; ``quick``: the laptop default, minutes per method x task;
- ``gpu``: conclusions on one GPU, about 10 minutes a method; ``paper``: the seed papers' settings.
"""

from __future__ import annotations

from typing import Any

PROFILES = ("smoke", "quick", "gpu", "paper")

# pretraining (``TrainConfig`` fields); a method's ``training`` table adds its optimiser settings
PROFILE_TRAIN: dict[str, dict[str, Any]] = {
    "smoke": {"steps": 4, "batch_size": 16, "warmup_steps": 1, "log_every": 1},
    "quick": {"steps": 600, "batch_size": 128, "warmup_steps": 50},
    # gpu: conclusions on one GPU, about 10 minutes a method (50,000 galaxies, 100 epochs)
    "gpu": {"steps": 10_000, "batch_size": 512, "warmup_steps": 500, "log_every": 250},
    "paper": {"steps": 100_000, "batch_size": 256, "warmup_steps": 5000},
}

# the fine-tuning protocol (``tasks.finetune.FinetuneSettings`` fields)
FINETUNE_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"steps": 4, "batch_size": 8, "eval_batch_size": 64, "recalibration_rows": 64},
    # quick: ~9 epochs of the 4,200 labelled training galaxies (200 steps, 3 epochs, did not get past
    # the class frequencies); ~1-2 min for the small ResNet on 2 CPU cores
    "quick": {"steps": 600, "batch_size": 64},
    "gpu": {"steps": 3000, "batch_size": 256, "recalibration_rows": 8192},
    "paper": {"steps": 10_000, "batch_size": 256, "recalibration_rows": 8192},
}

# galaxies in the embedded simulated survey (``datasets.synthetic.SyntheticSurvey``'s ``n``)
SYNTHETIC_SIZES: dict[str, int] = {"smoke": 512, "quick": 6000, "gpu": 50_000, "paper": 200_000}

"""Score your own encoder, and embeddings you computed elsewhere, on astrobench's tasks.

    python examples/evaluate/score_your_encoder.py            # smoke-sized: about a minute on a CPU
    astrobench leaderboard                                     # both rows, beside any run of yours

1. A plain timm model (no astrobench method, no plugin): any torch.nn.Module mapping (B, C, H, W)
   normalised images to (B, D) vectors.
2. A NumPy array of embeddings keyed by object id, saved as .npz (object_id, embeddings): here
   the colours of a central aperture, the astronomer's classical features.
"""

from pathlib import Path

import numpy as np
import timm

import astrobench
from astrobench.benchmark.build import build_dataset
from astrobench.benchmark.config import RunConfig

DATASET = {"n": 512}  # the simulated survey (ugriz, 64x64); drop it for the profile's size
COMMON = {"tasks": ["redshift", "dwarfs"], "dataset": "synthetic", "dataset_options": DATASET, "profile": "smoke"}

# 1. an encoder: 5 input bands for ugriz, no classifier head
encoder = timm.create_model("resnet18", in_chans=5, num_classes=0, pretrained=False)
for record in astrobench.evaluate(encoder, **COMMON):
    print(f"{record['method']:>10} {record['task']:>8} {record['main_score']} = {record['scores'][record['main_score']]:.4f}"
          f"  -> {record['_path']}")

# 2. saved embeddings keyed by object id (any order; every object of the dataset needs a row)
data, _ = build_dataset("synthetic", DATASET, "smoke", Path(RunConfig().cache_dir))  # the cache evaluate() used
flux = data.image[:, :, 28:36, 28:36].sum(axis=(2, 3)).clip(1e-3, None)
colours = np.diff(-2.5 * np.log10(flux), axis=1).astype(np.float32)  # u-g, g-r, r-i, i-z
np.savez("aperture_colours.npz", object_id=data.object_id, embeddings=colours)
for record in astrobench.evaluate("aperture_colours.npz", **COMMON):
    print(f"{record['method']:>10} {record['task']:>8} {record['main_score']} = {record['scores'][record['main_score']]:.4f}"
          f"  -> {record['_path']}")

"""A probe from a plugin file (tests/plugins/mlp_probe.py: one file, one registration) runs on two
tasks through the public API, and the one place that decides protocol support says why it cannot
run on a third."""

from pathlib import Path

import numpy as np
import pytest

from astrobench.registry import PROBES, TASKS, load_plugin
from astrobench.tasks.base import EmbeddingInputs

MLP_PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "mlp_probe.py"


@pytest.fixture(scope="module")
def mlp() -> type:
    load_plugin(str(MLP_PLUGIN))
    load_plugin(str(MLP_PLUGIN))  # idempotent, as in every DDP rank
    return PROBES.get("mlp")


def _splits(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    order = rng.permutation(n)
    return {"train": order[: n // 2], "val": order[n // 2 : 3 * n // 5], "test": order[3 * n // 5 :]}


def _dwarfs(n: int = 600) -> EmbeddingInputs:
    rng = np.random.default_rng(0)
    dwarf = rng.random(n) < 0.3
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x[:, 0] += 3.0 * dwarf
    return EmbeddingInputs(x, np.array([f"d{i}" for i in range(n)]), {"dwarf": dwarf}, _splits(n, rng))


def _redshifts(n: int = 800) -> EmbeddingInputs:
    rng = np.random.default_rng(1)
    z = rng.uniform(0.01, 0.39, n)
    t = (z - 0.01) / 0.38
    x = np.concatenate([np.stack([np.cos(np.pi * t), np.sin(np.pi * t), t], 1) + 0.02 * rng.normal(size=(n, 3)),
                        0.1 * rng.normal(size=(n, 5))], axis=1).astype(np.float32)
    return EmbeddingInputs(x, np.array([f"z{i}" for i in range(n)]), {"redshift": z.astype(np.float32)}, _splits(n, rng))


def test_an_mlp_probe_from_a_plugin_runs_on_dwarfs_and_redshift(mlp):
    assert mlp.__name__ == "MLPProbe" and mlp.registered_name == "mlp"
    dwarfs = TASKS.get("dwarfs")(per_class=40, n_repeats=2, probe_options={"mlp": {"steps": 150}})
    assert "mlp" in dwarfs.protocols
    result = dwarfs.evaluate(_dwarfs(), protocol="mlp", seed=0, label_budget=None)
    assert result.details["probe"] == "MLPProbe" and result.details["n_train_per_repeat"] == [80, 80]
    # a hidden layer on 80 objects overfits (the linear probe reaches 0.91 here); far above chance (0.5)
    assert result.scores["accuracy"] > 0.75 and result.scores["roc_auc"] > 0.85
    again = dwarfs.evaluate(_dwarfs(), protocol="mlp", seed=0, label_budget=None)
    assert again.scores == result.scores  # the probe's seed comes from the task's seed

    redshift = TASKS.get("redshift")(n_bins=40)
    result = redshift.evaluate(_redshifts(), protocol="mlp", seed=0, label_budget=None)
    # a distribution over the bins: scored like the linear probe, with CRPS and PIT
    assert set(result.scores) == {"sigma_mad", "eta_percent", "bias", "abs_bias", "crps"}
    assert result.scores["sigma_mad"] < 0.03
    assert result.predictions["z_phot"].between(0.0, 0.4).all()


def test_protocol_support_is_decided_in_one_place(mlp):
    morphology = TASKS.get("morphology")
    # vote-fraction regression needs a probe that fits values, which the MLP does not
    assert "mlp" not in morphology().protocols and "mlp" in morphology(vote_fractions=()).protocols
    with pytest.raises(ValueError, match=r"no protocol 'mlp' \(probe 'mlp' cannot fit targets of kind \['values'\]\)"):
        morphology().check_protocol("mlp")
    assert "mlp" not in TASKS.get("similarity")().protocols
    with pytest.raises(ValueError, match="probe 'mlp' has no option 'depth'"):
        TASKS.get("dwarfs")(probe_options={"mlp": {"depth": 3}}).probe("mlp")

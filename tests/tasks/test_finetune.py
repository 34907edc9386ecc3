"""The fine-tuning protocol with a tiny torch module implementing ``views`` and ``embed``."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from astrobench.datasets.schema import SurveyData
from astrobench.tasks.base import FinetuneInputs
from astrobench.tasks.dwarfs import DwarfTask
from astrobench.tasks.finetune import FinetuneSettings, finetune_classifier
from astrobench.tasks.morphology import MorphologyTask
from astrobench.tasks.redshift import RedshiftTask


class TinyViews:
    """Random view: a flip drawn per image from the generator plus a little noise; eval view: the image."""

    def __init__(self):
        self.calls = 0

    def __call__(self, batch, generator=None):
        self.calls += 1
        image = batch["image"]
        flip = torch.rand(image.shape[0], generator=generator) < 0.5
        image = torch.where(flip[:, None, None, None], image.flip(-1), image)
        return image + 0.05 * torch.randn(image.shape, generator=generator)

    def eval_view(self, batch):
        return batch["image"]


class TinyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.views = TinyViews()
        self.conv = nn.Conv2d(2, 6, 3, padding=1)

    def embed(self, images):
        return torch.relu(self.conv(images)).mean(dim=(2, 3))


def _data(n: int = 160, seed: int = 0) -> SurveyData:
    rng = np.random.default_rng(seed)
    dwarf = np.arange(n) % 2 == 1
    image = rng.normal(0, 0.3, size=(n, 2, 8, 8)).astype(np.float32)
    image[dwarf, :, 2:6, 2:6] += 1.5  # dwarfs: a bright centre
    z = rng.uniform(0.01, 0.39, n).astype(np.float32)
    featured = np.where(dwarf, 0.8, 0.2).astype(np.float32)
    return SurveyData(
        object_id=np.array([f"f{i}" for i in range(n)]), image=image, mask=np.zeros(image.shape, bool),
        bands=("g", "r"), pixel_scale=np.full(n, 0.262, np.float32), psf_fwhm=np.ones((n, 2), np.float32),
        ebv=np.zeros(n, np.float32), ra=np.zeros(n), dec=np.zeros(n),
        labels={"dwarf": dwarf, "redshift": z, "gz_featured": featured, "gz_smooth": 1 - featured,
                "gz_spiral": featured, "gz_edge_on": 1 - featured, "gz_bar": featured, "gz_merger": 1 - featured},
    )


def _inputs(model=None, profile="smoke") -> FinetuneInputs:
    torch.manual_seed(0)
    n = 160
    return FinetuneInputs(model=model or TinyModel(), data=_data(n), device=torch.device("cpu"), profile=profile,
                          splits={"train": np.arange(0, 100), "val": np.arange(100, 120), "test": np.arange(120, n)})


SETTINGS = FinetuneSettings(steps=30, batch_size=32, backbone_lr=1e-3, head_lr=3e-2, eval_batch_size=16)


def test_learns_trains_the_backbone_and_uses_random_views():
    inputs = _inputs()
    before = copy.deepcopy(inputs.model.conv.weight.detach())
    targets = inputs.data.labels["dwarf"].astype(np.int64)
    out = finetune_classifier(inputs, targets, [2], inputs.splits["train"], seed=0, settings=SETTINGS)
    assert out.eval_indices.tolist() == list(range(120, 160))
    predicted = out.probabilities[0].argmax(1)
    assert np.mean(predicted == targets[120:]) >= 0.9
    assert out.losses[-1] < out.losses[0]
    assert not torch.equal(before, inputs.model.conv.weight)  # backbone trained too
    assert inputs.model.views.calls == SETTINGS.steps  # one random view per step
    assert out.probabilities[0].sum(1) == pytest.approx(np.ones(40))


def test_same_seed_same_result_other_seed_differs():
    targets = _data().labels["dwarf"].astype(np.int64)
    runs = []
    for seed in (0, 0, 1):
        model = TinyModel()
        model.load_state_dict(_reference_state())
        inputs = _inputs(model)
        runs.append(finetune_classifier(inputs, targets, [2], inputs.splits["train"], seed=seed,
                                        settings=FinetuneSettings(steps=6, batch_size=16)))
    assert np.array_equal(runs[0].probabilities[0], runs[1].probabilities[0])
    assert runs[0].losses == runs[1].losses
    assert not np.array_equal(runs[0].probabilities[0], runs[2].probabilities[0])


def _reference_state():
    torch.manual_seed(123)
    return TinyModel().state_dict()


def test_missing_targets_are_ignored_and_non_finite_loss_stops():
    inputs = _inputs()
    targets = np.stack([inputs.data.labels["dwarf"].astype(np.int64), np.full(160, -1)], 1)
    targets[::3, 0] = -1
    out = finetune_classifier(inputs, targets, [2, 3], inputs.splits["train"], seed=0,
                              settings=FinetuneSettings(steps=3, batch_size=16))
    assert [p.shape for p in out.probabilities] == [(40, 2), (40, 3)]
    assert np.isfinite(out.losses).all()
    bad = _inputs()
    bad.data.image[:] = np.nan
    with pytest.raises(FloatingPointError, match="step"):
        finetune_classifier(bad, targets, [2, 3], bad.splits["train"], seed=0, settings=FinetuneSettings(steps=3, batch_size=8))
    with pytest.raises(ValueError, match="profile 'huge'"):
        finetune_classifier(_inputs(profile="huge"), targets[:, 0], [2], np.arange(10), seed=0)


def test_tasks_finetune_with_smoke_profile():
    dwarfs = DwarfTask(per_class=20, min_per_class=5).finetune(_inputs(), seed=0, label_budget=None)
    assert set(dwarfs.scores) == {"accuracy", "roc_auc", "f1"} and dwarfs.details["n_train"] == 40
    assert len(dwarfs.predictions) == 40
    redshift = RedshiftTask(n_bins=20).finetune(_inputs(), seed=0, label_budget=30)
    assert {"sigma_mad", "eta_percent", "bias", "abs_bias", "crps"} == set(redshift.scores)
    assert redshift.details["n_train"] == 30
    morphology = MorphologyTask().finetune(_inputs(), seed=0, label_budget=None)
    assert "accuracy_smooth_or_featured" in morphology.scores and "accuracy" in morphology.scores
    assert set(morphology.scores) <= set(MorphologyTask().higher_is_better)

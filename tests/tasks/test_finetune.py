"""The fine-tuning protocol with a tiny torch module implementing ``views`` and ``embed``."""

import contextlib
import copy

import numpy as np
import pandas as pd
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
    assert set(dwarfs.scores) == {"balanced_accuracy", "accuracy", "roc_auc", "f1"} and dwarfs.details["n_train"] == 40
    assert len(dwarfs.predictions) == 40
    redshift = RedshiftTask(n_bins=20).finetune(_inputs(), seed=0, label_budget=30)
    assert {"sigma_mad", "eta_percent", "bias", "abs_bias", "crps"} == set(redshift.scores)
    assert redshift.details["n_train"] == 30
    morphology = MorphologyTask().finetune(_inputs(), seed=0, label_budget=None)
    assert "accuracy_smooth_or_featured" in morphology.scores and "accuracy" in morphology.scores
    assert set(morphology.scores) <= set(MorphologyTask().higher_is_better)


# -- the recipe: what makes fine-tuning learn (issue 19: it predicted the class frequencies) -------
def _colour_data(n: int = 400, seed: int = 0, colour: float = 0.3) -> tuple[SurveyData, np.ndarray]:
    """Label = the sign of a flux ratio (a colour) of a central blob whose brightness varies 6x."""
    rng = np.random.default_rng(seed)
    data = _data(n, seed)
    y = rng.integers(0, 2, n)
    image = rng.normal(0, 0.3, size=(n, 2, 8, 8)).astype(np.float32)
    brightness = rng.uniform(0.5, 3.0, n)
    shift = np.where(y == 1, colour, -colour) * brightness
    image[:, 0, 2:6, 2:6] += (brightness + shift)[:, None, None]
    image[:, 1, 2:6, 2:6] += (brightness - shift)[:, None, None]
    data.image[:] = image
    return data, y


class ScaledModel(TinyModel):
    """TinyModel whose features are multiplied by ``scale`` (an untrained ResNet's pooled features
    have a standard deviation of ~0.02 in eval mode; here 0.002-0.015 at scale 0.1)."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def embed(self, images):
        return self.scale * super().embed(images)


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_finetuning_learns_what_the_frozen_linear_probe_cannot(scale):
    """A colour-blind encoder (each filter weighs both bands equally, as one pretrained on brightness
    alone might): its frozen features hold no colour, so the linear probe is at chance; fine-tuning
    learns the colour, whatever the scale of the features (the head standardises them)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = np.arange(0, 300), np.arange(300, 400)
    accuracies = {"linear": [], "finetune": []}
    for seed in (0, 1):
        data, y = _colour_data(seed=seed)
        torch.manual_seed(seed)
        model = ScaledModel(scale)
        with torch.no_grad():
            model.conv.weight[:, 1] = model.conv.weight[:, 0]
            features = model.embed(torch.as_tensor(data.image)).numpy()
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(features[train], y[train])
        accuracies["linear"].append(np.mean(probe.predict(features[test]) == y[test]))
        inputs = FinetuneInputs(model=model, data=data, device=torch.device("cpu"), profile="smoke",
                                splits={"train": train, "test": test})
        out = finetune_classifier(inputs, y, [2], train, seed=0,
                                  settings=FinetuneSettings(steps=100, batch_size=32, eval_batch_size=100))
        accuracies["finetune"].append(np.mean(out.probabilities[0].argmax(1) == y[test]))
    assert max(accuracies["linear"]) <= 0.65  # chance: 0.5
    assert min(accuracies["finetune"]) >= 0.9


def test_redshift_like_bins_follow_the_diagonal_and_start_from_the_prior():
    """20 bins over 0 < z < 0.4, z encoded as a colour: the probability-weighted bin centres track z
    (not a constant near the mean, the collapse this protocol had), and the first loss is the
    entropy of the training bins' frequencies (zero weights, log-prior biases)."""
    from astrobench.benchmark.flags import constant_predictions

    n = 600
    rng = np.random.default_rng(5)
    data = _data(n, 5)
    z = rng.uniform(0.0, 0.4, n)
    brightness = rng.uniform(1.0, 3.0, n)
    image = rng.normal(0, 0.2, size=(n, 2, 8, 8)).astype(np.float32)
    image[:, 0, 2:6, 2:6] += (brightness * (1.0 + 2.0 * (z - 0.2)))[:, None, None]
    image[:, 1, 2:6, 2:6] += (brightness * (1.0 - 2.0 * (z - 0.2)))[:, None, None]
    data.image[:] = image
    bins = np.minimum((z / 0.02).astype(np.int64), 19)
    train, test = np.arange(0, 450), np.arange(450, n)
    torch.manual_seed(0)
    inputs = FinetuneInputs(model=TinyModel(), data=data, device=torch.device("cpu"), profile="smoke",
                            splits={"train": train, "test": test})
    out = finetune_classifier(inputs, bins, [20], train, seed=0,
                              settings=FinetuneSettings(steps=150, batch_size=32, eval_batch_size=150))
    counts = np.bincount(bins[train], minlength=20) + 1.0
    frequency = counts / counts.sum()
    assert out.prior_entropy == pytest.approx(-(frequency * np.log(frequency)).sum())
    assert out.losses[0] == pytest.approx(out.prior_entropy, abs=0.25)  # one batch's entropy, not log(20) + noise
    assert np.mean(out.losses[-10:]) < out.prior_entropy - 0.5
    z_phot = out.probabilities[0] @ (np.arange(20) * 0.02 + 0.01)
    assert np.corrcoef(z_phot, z[test])[0, 1] >= 0.9
    assert np.std(z_phot) >= 0.6 * np.std(z[test])
    frame = pd.DataFrame({"z_spec": z[test], "z_phot": z_phot})
    assert not constant_predictions(frame)


def test_finetune_views_keep_geometric_ops_and_add_rotation():
    """Label-preserving views: the method's geometric ops with their parameters, plus RR; the
    photometric ones (noise, reddening, PSF smoothing) change what the labels are read from."""
    from astrobench.augment.pipeline import ViewPipeline
    from astrobench.augment.normalize import Normalizer
    from astrobench.tasks.finetune import finetune_views

    normalizer = Normalizer(("u", "g", "r", "i", "z"), (1.0,) * 5)
    moco = ViewPipeline(["RR", "JC", "GN", "GR", "PS"], {"JC": {"max_shift_pix": 4.0}}, normalizer, 48)
    views = finetune_views(moco)
    assert views.codes == ("RR", "JC") and views.out_size == 48 and views.normalizer is normalizer
    assert views.config()["params"]["JC"]["max_shift_pix"] == 4.0
    assert finetune_views(ViewPipeline([], None, normalizer, 64)).codes == ("RR",)
    assert finetune_views(ViewPipeline(["FL"], None, normalizer, 64)).codes == ("RR", "FL")
    plugin_views = TinyViews()
    assert finetune_views(plugin_views) is plugin_views


def test_batch_norm_statistics_are_those_of_the_eval_views():
    """After fine-tuning, running statistics are re-measured on eval views of training objects: an
    encoder whose batch norm never saw data (running mean 0, var 1) predicts with real statistics."""
    from astrobench.tasks.finetune import recalibrate_batch_norm

    torch.manual_seed(0)
    norm = nn.BatchNorm1d(3)
    features = torch.randn(100, 3) * torch.tensor([0.02, 1.0, 5.0]) + torch.tensor([1.0, -2.0, 0.0])
    recalibrate_batch_norm([norm], lambda rows: norm(features[torch.as_tensor(rows)]), np.arange(100), 30,
                           contextlib.nullcontext())
    assert torch.allclose(norm.running_mean, features.mean(0), atol=1e-5)
    # the average of the chunks' (unbiased) variances: array_split makes four chunks of 25
    chunk_variances = torch.stack([chunk.var(0) for chunk in features.split(25)]).mean(0)
    assert torch.allclose(norm.running_var, chunk_variances, rtol=1e-4)
    assert not norm.training and norm.momentum == 0.1


def test_at_least_two_labelled_objects():
    inputs = _inputs()
    with pytest.raises(ValueError, match="at least two"):
        finetune_classifier(inputs, inputs.data.labels["dwarf"].astype(np.int64), [2], np.array([3]), seed=0,
                            settings=FinetuneSettings(steps=2, batch_size=8))

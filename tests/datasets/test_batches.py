"""Batches read on the host and batches served from rows resident on the device are the same,
and training from either gives bit-identical weights."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from astrobench.datasets.batches import ResidentRows, make_batch, resident_bytes
from astrobench.benchmark.config import TrainConfig
from astrobench.benchmark.pretrain import _epoch_permutation, batch_indices, pretrain
from astrobench.augment.normalize import Normalizer
from astrobench.augment.pipeline import ViewPipeline
from astrobench.testing import TinyAutoencoder, make_tiny_survey


def test_resident_rows_serve_what_make_batch_reads():
    data = make_tiny_survey(40, image_size=16)
    data.mask[3, 1, 2:5, 4] = True
    rows = np.array([5, 39, 0, 17, 22, 8])
    targets = np.arange(40) * 10
    resident = ResidentRows(data, rows, torch.device("cpu"), with_ivar=True, targets=targets)
    positions = torch.tensor([3, 0, 0, 5])  # repeated rows, any order
    got = resident.batch(positions)
    expected = make_batch(data, rows[positions.numpy()])
    for key in ("image", "mask", "ivar", "psf_fwhm", "ebv", "pixel_scale"):
        assert torch.equal(got[key], expected[key]), key
    assert got["bands"] == expected["bands"]
    assert got["target"].tolist() == targets[rows[positions.numpy()]].tolist()
    without = ResidentRows(data, rows, torch.device("cpu"), with_ivar=False)
    assert "ivar" not in without.batch(positions) and "ivar" not in make_batch(data, rows, with_ivar=False)


def test_resident_bytes_counts_image_mask_and_ivar():
    data = make_tiny_survey(4, image_size=16)  # 3 bands
    pixels = 3 * 16 * 16
    assert resident_bytes(data, 10, with_ivar=True) == 10 * (pixels * 9 + 4 * 5)
    assert resident_bytes(data, 10, with_ivar=False) == 10 * (pixels * 5 + 4 * 5)


def test_batch_indices_keep_the_per_step_definition():
    # the reference: a fresh permutation per epoch, drawn from (seed, epoch), cut into batches
    n, seed, batch = 10, 3, 4

    def reference(step: int) -> list[int]:
        out: list[int] = []
        start = step * batch
        while len(out) < batch:
            epoch, offset = divmod(start + len(out), n)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()
            out.extend(perm[offset : offset + batch - len(out)])
        return out

    for step in range(8):  # crosses epoch boundaries mid-batch
        assert batch_indices(n, seed, step, batch, 0, 1).tolist() == reference(step)
        halves = [batch_indices(n, seed, step, batch, r, 2).tolist() for r in (0, 1)]
        assert halves[0] + halves[1] == reference(step)
    assert not _epoch_permutation(n, seed, 0).flags.writeable  # shared between calls: read-only


def train_weights(tmp_path: Path, data_on_device: bool) -> dict[str, torch.Tensor]:
    data = make_tiny_survey(64, image_size=16)
    views = ViewPipeline(["RR", "GN", "JC"], None, Normalizer.fit(data), 16)
    torch.manual_seed(0)
    model = TinyAutoencoder(3, 16, views)
    cfg = dataclasses.replace(TrainConfig(), steps=6, batch_size=8, warmup_steps=1, log_every=3,
                              data_on_device=data_on_device)
    pretrain(model, data, np.arange(64), cfg, 0, tmp_path / str(data_on_device), torch.device("cpu"), {})
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_from_resident_rows_is_bit_identical(tmp_path):
    host, resident = train_weights(tmp_path, False), train_weights(tmp_path, True)
    assert host.keys() == resident.keys()
    for key in host:
        assert torch.equal(host[key], resident[key]), key

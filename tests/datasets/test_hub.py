"""HubSource: a tiny dataset in the Multimodal Universe image schema, saved to disk; offline errors."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from datasets import Array2D, Dataset, DatasetDict, Features, Sequence, Value

from astrobench.datasets.hub import HubSource
from astrobench.datasets.schema import DataError
from astrobench.registry import DATASETS

SIZE = 8
BANDS = ["DES-G", "DES-R", "DES-Z"]


def _mmu_dataset(n=4):
    per_band = {
        "band": Value("string"),
        "flux": Array2D(shape=(SIZE, SIZE), dtype="float32"),
        "ivar": Array2D(shape=(SIZE, SIZE), dtype="float32"),
        "mask": Array2D(shape=(SIZE, SIZE), dtype="bool"),
        "psf_fwhm": Value("float32"),
        "scale": Value("float32"),
    }
    features = Features({"image": Sequence(feature=per_band), "object_id": Value("string"),
                         "ra": Value("float64"), "dec": Value("float64"), "EBV": Value("float32"),
                         "Z": Value("float32")})  # fmt: skip
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        good = np.ones((3, SIZE, SIZE), bool)
        good[:, 0, :] = False  # MMU: False = bad pixel (first row of every band)
        flux = rng.normal(size=(3, SIZE, SIZE)).astype(np.float32)
        flux[2, 4, 4] = np.nan
        rows.append({
            "image": {"band": BANDS, "flux": list(flux), "ivar": list(np.full((3, SIZE, SIZE), 4.0, np.float32)),
                      "mask": list(good), "psf_fwhm": [1.3, 1.2, 1.1], "scale": [0.262] * 3},
            "object_id": f"ls{i}", "ra": 150.0 + i, "dec": 2.0, "EBV": 0.02 * i, "Z": 0.1 * i,
        })  # fmt: skip
    return Dataset.from_list(rows, features=features), rows


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    ds, rows = _mmu_dataset()
    path = tmp_path_factory.mktemp("mmu") / "legacysurvey"
    DatasetDict({"train": ds}).save_to_disk(str(path))
    return path, rows


def test_mmu_schema_mapping_and_mask_inversion(saved):
    path, rows = saved
    data = HubSource("MultimodalUniverse/legacysurvey", local_path=str(path), ebv_column="EBV",
                     label_columns={"redshift": "Z"}).load()  # fmt: skip
    assert data.image.shape == (4, 3, SIZE, SIZE) and data.bands == tuple(BANDS)
    # MMU mask True = good; ours True = invalid: the first row is invalid, plus the NaN pixel
    assert data.mask[:, :, 0, :].all()
    assert data.mask[:, 2, 4, 4].all()
    assert data.mask.sum() == 4 * (3 * SIZE + 1)
    assert (data.image[data.mask] == 0).all() and (data.ivar[data.mask] == 0).all()
    np.testing.assert_allclose(data.image[1, 0, 1:], np.asarray(rows[1]["image"]["flux"][0])[1:])
    np.testing.assert_allclose(data.psf_fwhm[0], [1.3, 1.2, 1.1], rtol=1e-6)
    np.testing.assert_allclose(data.pixel_scale, 0.262, rtol=1e-6)
    np.testing.assert_allclose(data.ebv, [0, 0.02, 0.04, 0.06], rtol=1e-6)
    np.testing.assert_allclose(data.labels["redshift"], [0, 0.1, 0.2, 0.3], rtol=1e-6)
    assert list(data.object_id) == ["ls0", "ls1", "ls2", "ls3"]
    assert data.manifest["source"] == "hub" and data.manifest["options"]["local_path"] == str(path)


def test_streaming_band_selection_and_limit(saved):
    path, _ = saved
    data = HubSource("x", local_path=str(path), streaming=True, max_objects=2, bands=["DES-Z", "DES-G"]).load()
    assert data.image.shape == (2, 2, SIZE, SIZE) and data.bands == ("DES-Z", "DES-G")
    np.testing.assert_allclose(data.psf_fwhm[0], [1.1, 1.3], rtol=1e-6)
    with pytest.raises(DataError, match=r"lacks band\(s\) \['DES-I'\]"):
        HubSource("x", local_path=str(path), bands=["DES-I"]).load()
    with pytest.raises(DataError, match=r"no split 'test'"):
        HubSource("x", local_path=str(path), split="test").load()


def test_offline_without_cache_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))

    def no_network(*args, **kwargs):
        raise AssertionError("the test touched the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    source = HubSource("MultimodalUniverse/legacysurvey", revision="0123abc", cache_dir=str(tmp_path / "hf"))
    with pytest.raises(DataError, match=r"neither cached nor reachable.*offline mode") as info:
        source.load()
    assert "MultimodalUniverse/legacysurvey" in str(info.value) and "0123abc" in str(info.value)
    assert "local_path" in str(info.value)


def test_missing_local_copy():
    with pytest.raises(DataError, match=r"local_path /nonexistent/mmu does not exist"):
        HubSource("x", local_path="/nonexistent/mmu").load()
    assert DATASETS.get("hub") is HubSource

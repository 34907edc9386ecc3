"""The on-disk dataset folder: streamed shards, atomic completion, the earlier format, datasets' reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from astrobench.datasets.schema import DataError, SurveyData
from astrobench.datasets.storage import ShardWriter, folder_content_hash, load_survey, save_survey


def _data(n: int = 10, seed: int = 0, ivar: bool = True, start: int = 0) -> SurveyData:
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(n, 2, 4, 3)).astype(np.float32)
    mask = rng.random((n, 2, 4, 3)) < 0.2
    image[mask] = 0.0
    return SurveyData(
        object_id=np.array([f"obj-{start + i}" for i in range(n)]), image=image, mask=mask, bands=("g", "r"),
        pixel_scale=np.full(n, 0.262, np.float32), psf_fwhm=rng.random((n, 2)).astype(np.float32),
        ebv=rng.random(n).astype(np.float32), ra=rng.random(n) * 360, dec=rng.random(n) * 10,
        ivar=np.where(mask, 0, rng.random((n, 2, 4, 3))).astype(np.float32) if ivar else None,
        labels={"z": rng.random(n).astype(np.float32), "kind": rng.integers(0, 3, n), "flag": rng.random(n) < 0.5,
                "fractions": rng.random((n, 3)).astype(np.float32), "name": np.array([f"n{i % 3}" for i in range(n)]),
                "mass": rng.random(n)},
    )


def _assert_same(a: SurveyData, b: SurveyData) -> None:
    for name in ("object_id", "image", "mask", "pixel_scale", "psf_fwhm", "ebv", "ra", "dec"):
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.ivar is None) == (b.ivar is None) and (a.ivar is None or np.array_equal(a.ivar, b.ivar))
    assert sorted(a.labels) == sorted(b.labels)
    for name in a.labels:
        assert a.labels[name].dtype == b.labels[name].dtype and a.labels[name].shape == b.labels[name].shape, name
        assert np.array_equal(a.labels[name], b.labels[name]), name
    assert a.bands == b.bands and a.content_hash() == b.content_hash()


@pytest.mark.parametrize("ivar", [True, False])
def test_save_load_round_trip_every_dtype(tmp_path, ivar: bool) -> None:
    data = _data(ivar=ivar)
    save_survey(data, tmp_path / "d", manifest={"note": "x"})
    loaded = load_survey(tmp_path / "d")
    _assert_same(data, loaded)
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["note"] == "x" and manifest["n"] == 10 and manifest["storage_format"] == 2
    assert manifest["content_hash"] == data.content_hash() == loaded.manifest["content_hash"]
    assert manifest["has_ivar"] is ivar


def test_streamed_chunks_roll_over_files_and_equal_one_save(tmp_path) -> None:
    chunks = [_data(7, seed=s, start=7 * s) for s in range(4)]
    with ShardWriter(tmp_path / "streamed", shard_rows=10) as writer:
        for chunk in chunks:
            writer.write(chunk)
        manifest = writer.finish({"dataset": "test"})
    files = sorted(p.name for p in (tmp_path / "streamed" / "data").glob("*.arrow"))
    assert files == [f"data-{i:05d}-of-00003.arrow" for i in range(3)]  # 28 rows, 10 a file
    whole = SurveyData(
        object_id=np.concatenate([c.object_id for c in chunks]), image=np.concatenate([c.image for c in chunks]),
        mask=np.concatenate([c.mask for c in chunks]), bands=("g", "r"),
        pixel_scale=np.concatenate([c.pixel_scale for c in chunks]), psf_fwhm=np.concatenate([c.psf_fwhm for c in chunks]),
        ebv=np.concatenate([c.ebv for c in chunks]), ra=np.concatenate([c.ra for c in chunks]),
        dec=np.concatenate([c.dec for c in chunks]), ivar=np.concatenate([c.ivar for c in chunks]),
        labels={k: np.concatenate([c.labels[k] for c in chunks]) for k in chunks[0].labels},
    )
    loaded = load_survey(tmp_path / "streamed")
    _assert_same(whole, loaded)
    assert manifest["content_hash"] == whole.content_hash() and manifest["n"] == 28
    assert [p.name for p in tmp_path.iterdir()] == ["streamed"]  # the temporary folder was renamed


def test_datasets_reads_the_folder(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    data = _data()
    save_survey(data, tmp_path / "d")
    table = datasets.load_from_disk(str(tmp_path / "d" / "data")).with_format("numpy")
    assert len(table) == 10 and list(table["object_id"][:2]) == ["obj-0", "obj-1"]
    assert np.array_equal(np.stack(list(table["image"])), data.image)


def test_writing_and_reading_never_import_datasets(tmp_path) -> None:
    """A GPU machine may lack ``datasets`` (and its import costs seconds): storage is pyarrow alone."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "sys.path.insert(0, {tests!r})\n"
            "from test_storage import _data\n"
            "from astrobench.datasets.storage import load_survey, save_survey\n"
            "d = _data(); save_survey(d, {out!r}); e = load_survey({out!r})\n"
            "assert e.content_hash() == d.content_hash()\n"
            "assert 'datasets' not in sys.modules, 'datasets was imported'\n")
    from pathlib import Path

    script = code.format(tests=str(Path(__file__).parent), out=str(tmp_path / "d"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_folders_of_the_earlier_writer_load_the_same(tmp_path) -> None:
    """Folders written by ``Dataset.from_dict(..., Array3D).save_to_disk`` (storage format 1) still load."""
    datasets = pytest.importorskip("datasets")
    from datasets import Array3D, Dataset, Features, Sequence, Value

    data = _data(12)
    features = {"object_id": Value("string"), "image": Array3D((2, 4, 3), "float32"), "mask": Array3D((2, 4, 3), "bool"),
                "pixel_scale": Value("float32"), "psf_fwhm": Sequence(Value("float32"), length=2), "ebv": Value("float32"),
                "ra": Value("float64"), "dec": Value("float64"), "ivar": Array3D((2, 4, 3), "float32"),
                "label_z": Value("float32"), "label_kind": Value("int64"), "label_flag": Value("bool"),
                "label_fractions": Sequence(Value("float32"), length=3), "label_name": Value("string"),
                "label_mass": Value("float64")}
    columns = {"object_id": data.object_id.tolist(), "image": data.image, "mask": data.mask,
               "pixel_scale": data.pixel_scale, "psf_fwhm": data.psf_fwhm, "ebv": data.ebv, "ra": data.ra,
               "dec": data.dec, "ivar": data.ivar, **{f"label_{k}": v for k, v in data.labels.items()}}
    folder = tmp_path / "old"
    Dataset.from_dict(columns, features=Features(features)).save_to_disk(str(folder / "data"), max_shard_size=800)
    assert len(list((folder / "data").glob("*.arrow"))) > 1
    manifest = {"schema_version": "1", "n": 12, "bands": ["g", "r"], "image_shape": [2, 4, 3], "image_is_flux": True,
                "has_ivar": True, "labels": sorted(data.labels), "content_hash": data.content_hash()}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert datasets is not None
    _assert_same(data, load_survey(folder))
    assert folder_content_hash(folder, manifest) == data.content_hash()


def test_an_error_or_an_unfinished_writer_leaves_nothing(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="renderer broke"):
        with ShardWriter(tmp_path / "out") as writer:
            writer.write(_data(5))
            raise RuntimeError("renderer broke")
    assert list(tmp_path.iterdir()) == []
    with ShardWriter(tmp_path / "out") as writer:
        writer.write(_data(5))
    assert list(tmp_path.iterdir()) == []  # closed without finish: not a dataset


def test_chunks_must_match_and_bad_chunks_are_named(tmp_path) -> None:
    with ShardWriter(tmp_path / "out") as writer:
        writer.write(_data(5))
        with pytest.raises(ValueError, match="ivar=False"):
            writer.write(_data(5, ivar=False, start=5))
    bad = _data(4)
    bad.image[1, 0, 0, 0], bad.mask[1, 0, 0, 0] = np.nan, False
    with pytest.raises(DataError, match="'obj-1' has 1 non-finite pixels"):
        with ShardWriter(tmp_path / "bad", validate=True) as writer:
            writer.write(bad)
            writer.finish({})
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="shard_rows must be a positive integer, got 0"):
        ShardWriter(tmp_path / "x", shard_rows=0)


def test_a_truncated_or_inconsistent_folder_is_a_named_error(tmp_path) -> None:
    save_survey(_data(6), tmp_path / "d")
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    manifest["n"] = 7
    (tmp_path / "d" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="hold 6 rows, the manifest says n=7"):
        load_survey(tmp_path / "d")
    arrow = next((tmp_path / "d" / "data").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:500])
    with pytest.raises(DataError, match="cannot read the dataset files"):
        load_survey(tmp_path / "d")
    with pytest.raises(DataError, match="no manifest.json"):
        load_survey(tmp_path / "nothing")

"""astrobench.evaluate: a plain timm encoder and a saved array of embeddings keyed by object id are
scored on registered tasks, stored like a run, and land on the leaderboard."""

import json

import numpy as np
import pytest

import astrobench
from astrobench.benchmark.build import build_dataset
from astrobench.datasets.schema import DataError
from astrobench.testing import run_cli

DATA = {"n": 300}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    return root / "results", root / "cache"


def test_a_timm_encoder_and_an_embeddings_file_land_on_the_leaderboard(folders, tmp_path):
    timm = pytest.importorskip("timm")
    results, cache = folders
    encoder = timm.create_model("resnet10t", in_chans=5, num_classes=0, pretrained=False)
    records = astrobench.evaluate(encoder, tasks=["redshift"], dataset_options=DATA, profile="smoke",
                                  results_dir=results, cache_dir=cache, device="cpu")
    (record,) = records
    assert record["method"] == "resnet10t" and record["task"] == "redshift" and record["protocol"] == "linear"
    assert 0 < record["scores"]["sigma_mad"] < 1
    assert record["model"] == {"backbone": "resnet10t", "embedding_dim": 512, "images_seen": None,
                               "parameters": sum(p.numel() for p in encoder.parameters())}
    on_disk = json.loads(open(record["_path"]).read())
    assert on_disk["scores"] == record["scores"] and on_disk["dataset_id"].startswith("synthetic-")

    # saved embeddings keyed by object id, in shuffled order: aligned by id, not by position
    data, _ = build_dataset("synthetic", DATA, "smoke", cache)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data))
    colours = -2.5 * np.log10(np.clip(data.image[:, :, 28:36, 28:36].sum(axis=(2, 3)), 1e-3, None))
    path = tmp_path / "colours.npz"
    np.savez(path, object_id=data.object_id[order], embeddings=np.diff(colours, axis=1)[order].astype(np.float32))
    (saved,) = astrobench.evaluate(path, tasks=["redshift"], dataset_options=DATA, profile="smoke",
                                   results_dir=results, cache_dir=cache, device="cpu")
    assert saved["method"] == "colours" and saved["model"]["embedding_dim"] == 4
    assert saved["dataset_id"] == record["dataset_id"]  # same data: same leaderboard columns
    # the same scores as the vectors given in the dataset's order (alignment is by object id)
    aligned = {str(o): v for o, v in zip(data.object_id, np.diff(colours, axis=1).astype(np.float32))}
    (again,) = astrobench.evaluate(aligned, tasks=["redshift"], name="colours-dict", dataset_options=DATA,
                                   profile="smoke", results_dir=tmp_path / "other", cache_dir=cache, device="cpu")
    assert again["scores"] == pytest.approx(saved["scores"])

    board = run_cli("leaderboard", "--results-dir", str(results), "--format", "json")
    assert board.returncode == 0, board.stderr
    rows = {r["method"]: r for r in json.loads(board.stdout)}
    assert set(rows) == {"resnet10t", "colours"}
    assert rows["resnet10t"]["model"]["parameters"] == record["model"]["parameters"]
    # a second call finds the results and writes nothing
    assert astrobench.evaluate(path, tasks=["redshift"], dataset_options=DATA, profile="smoke",
                               results_dir=results, cache_dir=cache, device="cpu") == []


def test_embeddings_that_do_not_match_the_dataset_are_named_errors(folders, tmp_path):
    results, cache = folders
    data, _ = build_dataset("synthetic", DATA, "smoke", cache)
    vectors = np.ones((len(data), 3), np.float32)
    short = tmp_path / "short.npz"
    np.savez(short, object_id=data.object_id[1:], embeddings=vectors[1:])
    with pytest.raises(DataError, match=rf"short\.npz: 1 of the dataset's 300 objects have no embedding, e\.g\. '{data.object_id[0]}'"):
        astrobench.evaluate(short, tasks=["redshift"], dataset_options=DATA, profile="smoke", results_dir=tmp_path / "r",
                            cache_dir=cache, device="cpu")
    stray = tmp_path / "stray.npz"
    np.savez(stray, object_id=np.append(data.object_id, "not-here"), embeddings=np.ones((len(data) + 1, 3), np.float32))
    with pytest.raises(DataError, match=r"1 object id\(s\) are not in the dataset, e\.g\. 'not-here'"):
        astrobench.evaluate(stray, tasks=["redshift"], dataset_options=DATA, profile="smoke", results_dir=tmp_path / "r",
                            cache_dir=cache, device="cpu")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, ids=data.object_id, vectors=vectors)
    with pytest.raises(DataError, match=r"wrong\.npz: no array 'object_id'"):
        astrobench.evaluate(wrong, tasks=["redshift"], results_dir=tmp_path / "r", cache_dir=cache)
    assert not (tmp_path / "r").exists()  # nothing partial written


def test_bad_arguments_fail_before_any_data_is_loaded(tmp_path):
    from astrobench.benchmark.config import ConfigError
    from astrobench.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean 'redshift'"):
        astrobench.evaluate({"a": [1.0]}, tasks=["redshfit"], cache_dir=tmp_path / "c")
    with pytest.raises(ConfigError, match="fine-tuning needs an astrobench method"):
        astrobench.evaluate({"a": [1.0]}, tasks=["redshift"], protocols=["finetune"], cache_dir=tmp_path / "c")
    with pytest.raises(TypeError, match="scores a torch.nn.Module"):
        astrobench.evaluate([1, 2, 3], tasks=["redshift"], cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()

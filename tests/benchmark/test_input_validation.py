"""Every input checked before expensive work, with an error naming the key/file/field (issue 17):
run-config values, per-object metadata, catalogue label columns, damaged dataset manifests."""

import json

import numpy as np
import pandas as pd
import pytest

from astrobench.benchmark.config import ConfigError, build_config
from astrobench.datasets._source_utils import catalog_labels
from astrobench.datasets.schema import DataError
from astrobench.datasets.storage import load_survey, save_survey
from astrobench.testing import make_tiny_survey


@pytest.mark.parametrize("yaml_values, message", [
    ({"train": {"steps": 0}}, r"exp.yaml: train.steps must be >= 1, got 0"),
    ({"train": {"steps": -5}}, r"train.steps must be >= 1, got -5"),
    ({"train": {"steps": "ten"}}, r"train.steps must be int, got 'ten'"),
    ({"train": {"batch_size": 0}}, r"train.batch_size must be >= 2, got 0"),
    ({"train": {"batch_size": 1}}, r"train.batch_size must be >= 2"),
    ({"train": {"batch_size": 16.5}}, r"train.batch_size must be int, got 16.5"),
    ({"train": {"lr": "fast"}}, r"train.lr must be int or float, got 'fast'"),
    ({"train": {"lr": 0}}, r"train.lr must be > 0"),
    ({"train": {"lr": float("inf")}}, r"train.lr must be finite"),
    ({"train": {"optimizer": "lamb"}}, r"train.optimizer 'lamb' is not one of \['adamw', 'sgd'\]"),
    ({"train": {"steps": True}}, r"train.steps must be a number, got True"),
    ({"train": {"keep_checkpoints": 0}}, r"train.keep_checkpoints must be >= 1"),
    ({"seeds": "zero"}, r"seeds must be a list of non-negative integers, got 'zero'"),
    ({"seeds": [0, "one"]}, r"seeds must be a list of non-negative integers"),
    ({"seeds": [-1]}, r"seeds must be a list of non-negative integers"),
    ({"label_budgets": [50, "many"]}, r"label budget 'many' must be an integer or 'all'"),
    ({"methods": "mae"}, r"methods must be a list of names, got 'mae'"),
    ({"dataset_options": ["n=3"]}, r"dataset_options must be a mapping"),
])
def test_bad_run_config_values_are_named(yaml_values, message):
    with pytest.raises(ConfigError, match=message):
        build_config(yaml_values, {}, source="exp.yaml")


def test_label_budget_all_in_yaml_means_every_label():
    assert build_config({"label_budgets": [50, "all"]}, {}).label_budgets == [50, None]


def test_resolved_train_checks_the_batch_against_the_processes_and_method_defaults():
    config = build_config({"profile": "smoke"}, {"train": {"batch_size": 15}})
    with pytest.raises(ConfigError, match=r"method 'simclr': train.batch_size 15 is not divisible by the 2 processes"):
        config.resolved_train({}, "simclr", world_size=2)
    assert config.resolved_train({}, "simclr", world_size=3).batch_size == 15
    with pytest.raises(ConfigError, match=r"method 'plug' training defaults \(smoke\): train.steps must be int"):
        build_config({"profile": "smoke"}, {}).resolved_train({"smoke": {"steps": "4"}}, "plug")


@pytest.mark.parametrize("field, value, message", [
    ("pixel_scale", 0.0, r"field 'pixel_scale' of object 'tiny-0-00003' is 0.0 .*finite number > 0"),
    ("pixel_scale", -0.4, r"field 'pixel_scale' .* is -0.4"),
    ("pixel_scale", np.inf, r"field 'pixel_scale' .* is inf"),
    ("ebv", np.inf, r"field 'ebv' of object 'tiny-0-00003' is inf .*>= 0"),
    ("ebv", -0.1, r"field 'ebv' .*is -0.1"),
    ("psf_fwhm", 0.0, r"field 'psf_fwhm' of object 'tiny-0-00003' is 0.0 .*> 0"),
])
def test_bad_per_object_metadata_names_origin_field_and_object(field, value, message):
    data = make_tiny_survey(8)
    data.origin = "survey.h5"
    getattr(data, field)[3] = value
    with pytest.raises(DataError, match=message) as info:
        data.validate()
    assert str(info.value).startswith("survey.h5: ")


def test_unknown_metadata_nan_is_allowed():
    data = make_tiny_survey(8)
    data.pixel_scale[:] = np.nan
    data.ebv[:] = np.nan
    data.psf_fwhm[:] = np.nan
    data.validate()


def test_a_label_column_that_does_not_parse_is_an_error_naming_column_and_row():
    frame = pd.DataFrame({"name": ["a", "b", "c"], "redshift": ["0.1", "0.2x", "0.3"], "mag": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match=r"cat.csv: label column 'redshift', row 1 .*value '0.2x' is not a number"):
        catalog_labels(frame, "cat.csv", {"name"}, None, ())
    ok = catalog_labels(frame.assign(redshift=["0.1", "", "0.3"]), "cat.csv", {"name"}, None, ())
    assert np.isnan(ok["redshift"][1]) and sorted(ok) == ["mag", "redshift"]  # empty = missing label
    assert "name" not in catalog_labels(frame.drop(columns="redshift"), "cat.csv", set(), None, ())  # text: no label


def test_a_damaged_dataset_manifest_names_the_file_and_the_remedy(tmp_path):
    folder = tmp_path / "survey"
    save_survey(make_tiny_survey(8), folder)
    (folder / "manifest.json").write_text('{"bands": ["g"], ')
    with pytest.raises(DataError, match=r"manifest.json: damaged dataset manifest .*delete .*survey"):
        load_survey(folder)
    (folder / "manifest.json").write_text(json.dumps(["a list"]))
    with pytest.raises(DataError, match="not an astrobench manifest"):
        load_survey(folder)


def test_yaml_and_command_line_layers_meet_in_one_place():
    config = build_config(
        {"dataset_options": {"n": 5, "seed": 1}, "plugins": ["a.py"], "train": {"lr": 0.5, "steps": 9},
         "method_options": {"mae": {"mask_ratio": 0.6, "decoder_depth": 2}}},
        {"dataset_options": {"n": 7}, "plugins": ["b.py", "a.py"], "train": {"steps": 3},
         "method_options": {"mae": {"decoder_depth": 4}}})
    assert config.dataset_options == {"n": 7, "seed": 1}
    assert config.plugins == ["a.py", "b.py"]
    assert config.train_overrides == {"lr": 0.5, "steps": 3}
    assert config.method_options == {"mae": {"mask_ratio": 0.6, "decoder_depth": 4}}

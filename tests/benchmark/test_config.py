import pytest

from astrobench.benchmark.config import PROFILE_TRAIN, ConfigError, build_config, load_yaml


def test_precedence_cli_over_yaml_over_defaults(tmp_path):
    yaml_file = tmp_path / "exp.yaml"
    yaml_file.write_text("methods: [mae]\nseeds: [1, 2]\nprofile: smoke\ntrain: {steps: 10, lr: 0.5}\n")
    config = build_config(load_yaml(yaml_file), {"seeds": [7], "train": {"steps": 3}}, source=str(yaml_file))
    assert config.methods == ["mae"]  # from YAML
    assert config.seeds == [7]  # CLI wins
    train = config.resolved_train({})
    assert train.steps == 3 and train.lr == 0.5  # CLI then YAML
    assert train.batch_size == PROFILE_TRAIN["smoke"]["batch_size"]  # profile default


def test_method_training_defaults_sit_between_profile_and_explicit_keys():
    config = build_config({"profile": "quick"}, {"train": {"lr": 0.1}})
    train = config.resolved_train({"quick": {"optimizer": "sgd", "lr": 0.03, "steps": 77}})
    assert (train.optimizer, train.lr, train.steps) == ("sgd", 0.1, 77)


def test_unknown_key_names_key_and_file(tmp_path):
    yaml_file = tmp_path / "exp.yaml"
    yaml_file.write_text("methds: [mae]\n")
    with pytest.raises(ConfigError, match=r"exp.yaml: unknown key 'methds' \(did you mean 'methods'\?\)"):
        build_config(load_yaml(yaml_file), {}, source=str(yaml_file))


def test_unknown_nested_train_key_is_named(tmp_path):
    yaml_file = tmp_path / "exp.yaml"
    yaml_file.write_text("train: {stepz: 3}\n")
    with pytest.raises(ConfigError, match=r"exp.yaml: unknown key train.'stepz'"):
        build_config(load_yaml(yaml_file), {}, source=str(yaml_file))


def test_malformed_values_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="profile 'huge'"):
        build_config({"profile": "huge"}, {})
    with pytest.raises(ConfigError, match="label budget -5"):
        build_config({"label_budgets": [-5]}, {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_yaml(bad)


def test_views_accept_a_list_of_codes_or_a_mapping():
    config = build_config({"views": {"simclr": ["RR", "JC"], "mocov2": {"codes": ["GN"], "params": {"GN": {"p": 0.5}}}}}, {})
    assert config.views["simclr"].codes == ["RR", "JC"]
    assert config.views["mocov2"].params == {"GN": {"p": 0.5}}

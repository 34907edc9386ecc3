"""Code identity (issue 17): a version and the defining modules' source hash for every registered class."""

import importlib.util
import os
import sys
import textwrap

from astrobench.benchmark.identity import DEFAULT_VERSION, code_identity, method_code
from astrobench.registry import AUGMENTATIONS, DATASETS, METHODS, TASKS

PLUGIN = textwrap.dedent("""
    from astrobench.tasks.base import Task

    def loss(x):
        return x * {factor}

    class EditedTask(Task):
        main_score = "s"
        higher_is_better = {{"s": True}}
        def evaluate(self, inputs, *, protocol, seed, label_budget):
            raise NotImplementedError

    class VersionedTask(EditedTask):
        version = "7"
""")


def _import(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_editing_a_plugin_module_changes_its_identity_and_nothing_else(tmp_path):
    path = tmp_path / "plugin_mod.py"
    path.write_text(PLUGIN.format(factor=2))
    before = code_identity(_import(path, "plugin_mod_for_identity").EditedTask)
    again = code_identity(_import(path, "plugin_mod_for_identity").EditedTask)
    path.write_text(PLUGIN.format(factor=3))  # the loss changes
    os.utime(path, ns=(1, 1))  # a new mtime even within the same clock tick
    after = code_identity(_import(path, "plugin_mod_for_identity").EditedTask)
    assert before == again
    assert before["source_sha256"] != after["source_sha256"]
    assert before["target"] == after["target"] == "plugin_mod_for_identity:EditedTask"
    assert before["version"] == DEFAULT_VERSION == "1"


def test_version_attribute_is_read_and_every_kind_has_one(tmp_path):
    path = tmp_path / "plugin_versioned.py"
    path.write_text(PLUGIN.format(factor=2))
    assert code_identity(_import(path, "plugin_versioned").VersionedTask)["version"] == "7"
    for cls in (METHODS.get("simclr"), TASKS.get("redshift"), DATASETS.get("hdf5"), AUGMENTATIONS.get("GN")):
        ident = code_identity(cls)
        assert ident["version"] == "1" and len(ident["source_sha256"]) == 16


def test_a_method_identity_includes_its_base_module_and_its_augmentations():
    code = method_code(METHODS.get("simclr"), ["RR", "GN"])
    assert code["method"]["target"] == "astrobench.methods.simclr:SimCLR"
    assert set(code["augmentations"]) == {"RR", "GN"}
    # the base class's module counts: a method subclassing another method's file hashes both
    mae, simclr = code_identity(METHODS.get("mae")), code_identity(METHODS.get("simclr"))
    assert mae["source_sha256"] != simclr["source_sha256"]

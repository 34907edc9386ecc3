import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from astrobench.registry import DuplicateNameError, Registry, UnknownNameError, load_plugin

from astrobench.testing import run_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_installed_plugins(monkeypatch):
    """A fresh Registry reads the installed distributions' entry points: a plugin installed in this
    environment (say a BYOL method) would appear in it, so these tests see none."""
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **selection: [])


class Alpha:
    pass


class Beta:
    pass


def test_decorator_registers_and_get_returns_object(no_installed_plugins):
    reg = Registry("methods")
    reg.decorator("alpha")(Alpha)
    assert reg.get("alpha") is Alpha
    assert Alpha.registered_name == "alpha"


def test_registering_a_name_twice_names_both_places(no_installed_plugins):
    reg = Registry("methods")
    reg.register("alpha", Alpha)
    with pytest.raises(DuplicateNameError) as err:
        reg.register("alpha", Beta)
    message = str(err.value)
    assert "test_registry:Alpha" in message and "test_registry:Beta" in message


def test_registering_the_same_object_again_is_idempotent(no_installed_plugins):
    reg = Registry("methods")
    reg.register("alpha", Alpha)
    reg.register("alpha", Alpha)
    assert reg.names() == ["alpha"]


def test_lazy_entry_resolves_without_duplicate_when_decorated_target_matches(no_installed_plugins):
    reg = Registry("methods")
    reg.add_lazy("alpha", f"{Alpha.__module__}:Alpha", "built-in")
    reg.register("alpha", Alpha)  # what the decorator does when the module is imported
    assert reg.get("alpha") is Alpha
    with pytest.raises(DuplicateNameError):
        reg.add_lazy("alpha", "somewhere.else:Alpha", "entry point of other-dist")


def test_unknown_name_suggests_close_matches(no_installed_plugins):
    reg = Registry("methods")
    for name in ("mae", "mocov2", "simclr"):
        reg.add_lazy(name, f"x.{name}:C", "built-in")
    with pytest.raises(UnknownNameError, match=r"Did you mean 'mae'"):
        reg.get("mea")
    with pytest.raises(UnknownNameError, match=r"'simclr'"):
        reg.get("simclrr")


def test_plugin_file_is_loaded_once(tmp_path):
    from astrobench.registry import TASKS

    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(textwrap.dedent("""
        from astrobench import register_task
        from astrobench.testing import TinySizeTask

        @register_task("plugin-file-task")
        class PluginFileTask(TinySizeTask):
            pass
    """))
    load_plugin(str(plugin))
    load_plugin(str(plugin))  # every DDP rank imports plugins: must not raise
    assert "plugin-file-task" in TASKS.names()


def test_missing_plugin_is_a_clear_error(tmp_path):
    from astrobench.registry import RegistryError

    with pytest.raises(RegistryError, match="does not exist"):
        load_plugin(str(tmp_path / "nope.py"))
    with pytest.raises(RegistryError, match="neither an importable module"):
        load_plugin("no_such_module_xyz")


def test_ls_does_not_import_torch():
    code = (
        "import sys, io, contextlib\n"
        "from astrobench.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    assert main(['ls', 'methods']) == 0\n"
        "print('random' in buf.getvalue(), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_installed_plugin_distribution_is_discovered_through_its_entry_point(tmp_path):
    """Install the example plugin package for real (pip, into a target folder) and list it."""
    target = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(REPO / "examples" / "plugin")],
        capture_output=True, text=True,
    )
    assert pip.returncode == 0, pip.stderr
    env = {"PYTHONPATH": str(target)}
    methods = run_cli("ls", "methods", env=env)
    assert methods.returncode == 0, methods.stderr
    line = next(l for l in methods.stdout.splitlines() if l.startswith("rotnet"))
    assert "astrobench_example.rotnet:RotNet" in line and "entry point of astrobench-example" in line
    tasks = run_cli("ls", "tasks", env=env)
    assert any(l.startswith("colour") for l in tasks.stdout.splitlines()), tasks.stdout


def test_every_built_in_is_declared_once_as_an_entry_point_of_astrobench():
    """A built-in is its decorated class plus one entry-point line in pyproject.toml (the one
    discovery path, as for installed plugins): every decorated class has its line, and every line
    names a decorated class under the same name."""
    import ast
    import importlib.metadata

    decorated = set()
    for path in (REPO / "src" / "astrobench").rglob("*.py"):
        if path.name == "testing.py":
            continue  # the test doubles register themselves only when a test asks for them
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "id", "").startswith("register_"):
                    kind = {"method": "methods", "task": "tasks", "dataset": "datasets",
                            "augmentation": "augmentations", "probe": "probes"}[deco.func.id[len("register_"):]]
                    module = ".".join(path.relative_to(REPO / "src").with_suffix("").parts)
                    decorated.add((f"astrobench.{kind}", deco.args[0].value, f"{module}:{node.name}"))
    declared = {(ep.group, ep.name, ep.value) for ep in importlib.metadata.distribution("astrobench").entry_points}
    declared = {d for d in declared if d[0].startswith("astrobench.")}
    assert len(decorated) >= 30
    assert decorated == declared

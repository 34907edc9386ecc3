"""astrobench: which self-supervised method gives the best representations of your survey?"""

__version__ = "0.1.0"

from astrobench.registry import (  # noqa: E402
    register_augmentation,
    register_dataset,
    register_method,
    register_probe,
    register_task,
)

__all__ = [
    "__version__",
    "evaluate",
    "register_augmentation",
    "register_dataset",
    "register_method",
    "register_probe",
    "register_task",
]


def __getattr__(name: str):
    # astrobench.evaluate imports torch; `import astrobench` (and `astrobench ls`) must not
    if name == "evaluate":
        from astrobench.api import evaluate

        return evaluate
    raise AttributeError(f"module 'astrobench' has no attribute {name!r}")

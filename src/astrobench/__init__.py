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
    "register_augmentation",
    "register_dataset",
    "register_method",
    "register_probe",
    "register_task",
]

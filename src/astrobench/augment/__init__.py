"""Astro augmentations as batched tensor operations, and the view pipeline methods use.

Attributes load lazily: the registry looks modules up here without importing torch.
"""

from typing import Any

__all__ = ["AugBatch", "Augmentation", "ViewPipeline"]


def __getattr__(name: str) -> Any:
    if name in ("Augmentation", "AugBatch"):
        from astrobench.augment import base

        return getattr(base, name)
    if name == "ViewPipeline":
        from astrobench.augment.pipeline import ViewPipeline

        return ViewPipeline
    raise AttributeError(f"module 'astrobench.augment' has no attribute {name!r}")

"""Astro augmentations as batched tensor operations, and the view pipeline methods use."""

from astrobench.augment.base import Augmentation, AugBatch
from astrobench.augment.pipeline import ViewPipeline

__all__ = ["AugBatch", "Augmentation", "ViewPipeline"]

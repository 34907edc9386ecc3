"""A registered dataset: its constructor parameters are its documented options."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from astrobench.datasets.schema import SurveyData


class DataSource(ABC):
    """Produces ``SurveyData``. Subclasses take their options as typed ``__init__`` parameters.

    ``profiles`` maps a profile name (smoke, quick, paper) to overrides of those parameters, e.g.
    the simulator's number of galaxies. ``load`` may cache under ``cache_dir`` (keyed by what
    determines the data) and must return validated data or raise ``DataError`` naming the file.
    """

    registered_name: ClassVar[str]
    version: ClassVar[str] = "1"  # part of every cache key and result identity (benchmark/identity.py)
    profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    # True where ``load`` also takes ``progress=callback(done, total)`` (sources that generate on first use)
    reports_progress: ClassVar[bool] = False

    @abstractmethod
    def load(self, cache_dir: Path) -> SurveyData:
        """Return the whole dataset (arrays may be memory-mapped)."""

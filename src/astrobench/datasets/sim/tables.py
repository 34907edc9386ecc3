"""Package data: K-corrections of the CWW templates through real filter curves, Sersic transforms.

Built by ``scripts/make_sim_tables.py`` (sources named there); loaded once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

TABLES_PATH = Path(__file__).with_name("tables.npz")
SED_NAMES = ("E", "Sbc", "Scd", "Im")
SED_E, SED_SBC, SED_SCD, SED_IM = range(4)


@dataclass(frozen=True)
class Tables:
    z_grid: np.ndarray
    kcorr: dict[str, np.ndarray]  # preset -> (n_sed, n_band, n_z)
    rest_gr: np.ndarray  # (n_sed,)
    sersic_n: np.ndarray
    log_kappa: np.ndarray
    sersic_ft: np.ndarray  # (n_index, n_kappa)

    def kcorrection(self, preset: str, sed: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(N, n_band) K-correction incl. colour for template indices ``sed`` at redshifts ``z``."""
        table = self.kcorr[preset]
        pos = np.clip(np.asarray(z, dtype=np.float64) / (self.z_grid[1] - self.z_grid[0]), 0, len(self.z_grid) - 1.001)
        lo = pos.astype(np.int64)
        frac = (pos - lo)[:, None]
        sed = np.asarray(sed, dtype=np.int64)
        return table[sed, :, lo] * (1 - frac) + table[sed, :, lo + 1] * frac

    def sersic_index(self, n: np.ndarray) -> np.ndarray:
        """Nearest tabulated Sersic index (table row)."""
        step = self.sersic_n[1] - self.sersic_n[0]
        return np.clip(np.rint((np.asarray(n) - self.sersic_n[0]) / step), 0, len(self.sersic_n) - 1).astype(np.int64)


@lru_cache(maxsize=1)
def load_tables() -> Tables:
    if not TABLES_PATH.is_file():
        raise FileNotFoundError(
            f"simulator package data {TABLES_PATH} is missing; rebuild it with scripts/make_sim_tables.py"
        )
    with np.load(TABLES_PATH) as t:
        kcorr = {key.removeprefix("kcorr_"): t[key] for key in t.files if key.startswith("kcorr_")}
        return Tables(
            z_grid=t["z_grid"], kcorr=kcorr, rest_gr=t["rest_gr"], sersic_n=t["sersic_n"],
            log_kappa=t["log_kappa"], sersic_ft=t["sersic_ft"].astype(np.float32),
        )

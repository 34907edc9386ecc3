"""Band facts shared by the simulator and the augmentations.

Galactic extinction coefficients R = A_band / E(B-V) for R_V = 3.1 (Schlafly & Finkbeiner 2011):
SDSS ugriz as used by Hayat et al. 2021; DECam grz as used by the Legacy Surveys; HSC grizy as
used by HSC-SSP. Bands are looked up per survey; plain names fall back to the SDSS/HSC values.
"""

from __future__ import annotations

EXTINCTION_COEFFICIENTS: dict[str, dict[str, float]] = {
    "sdss": {"u": 4.239, "g": 3.303, "r": 2.285, "i": 1.698, "z": 1.263},
    "decals": {"g": 3.214, "r": 2.165, "z": 1.211},
    "hsc": {"g": 3.240, "r": 2.276, "i": 1.633, "z": 1.263, "y": 1.075},
}
_DEFAULT = {**EXTINCTION_COEFFICIENTS["hsc"], **EXTINCTION_COEFFICIENTS["sdss"]}


def extinction_coefficients(bands: tuple[str, ...] | list[str], survey: str | None = None) -> list[float]:
    """R = A_band / E(B-V) for each band; an unknown band is an error naming it."""
    table = EXTINCTION_COEFFICIENTS.get(survey, _DEFAULT) if survey else _DEFAULT
    missing = [b for b in bands if b not in table]
    if missing:
        raise KeyError(
            f"no Galactic extinction coefficient for band(s) {missing}"
            f"{' in survey ' + repr(survey) if survey else ''}; known: {sorted(table)}"
        )
    return [table[b] for b in bands]

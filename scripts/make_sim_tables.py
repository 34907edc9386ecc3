"""Build the simulator's package data: ``src/astrobench/datasets/sim/tables.npz``.

Run once (dev machine, no network):

    pip download speclite==1.0.0 --no-deps -d /tmp/sl && python -m zipfile -e /tmp/sl/*.whl /tmp/sl/x
    python scripts/make_sim_tables.py --filters-dir /tmp/sl/x/speclite/data/filters

Sources:
- SED templates: Coleman, Wu & Weedman (1980) E, Sbc, Scd, Im, extended by Bolzonella, Miralles &
  Pello (2000), as shipped by GalSim 2.x in ``galsim/share/SEDs/CWW_*_ext.sed`` (Angstrom, f_lambda).
- Filter curves, from the speclite 1.0.0 package (BSD-3-Clause), ``speclite/data/filters``:
  SDSS ugriz ``sdss2010-*`` (Doi et al. 2010, AJ 139, 1628, airmass 1.3); DECam grz ``decam2014-*``
  (DECam throughput incl. airmass 1.3 atmosphere); UNIONS-like u, r from CFHT MegaCam
  ``cfht_megacam-u/r``, g, z from HSC ``hsc2017-g/z``, i from Pan-STARRS ``panstarrs-i``.

Contents:
- ``kcorr_<preset>``  (n_sed, n_band, n_z): K-correction including colour, in AB mag, such that the
  observed magnitude of a source is ``M_r(rest, SDSS r) + DM(z) + kcorr[sed, band, z]``;
  it carries the (1+z) bandwidth factor of f_nu, so surface-brightness dimming comes out of
  ``D_L`` and ``D_A`` alone.
- ``rest_gr`` (n_sed,): rest-frame SDSS g-r of each template (for mass-to-light ratios).
- ``sersic_ft`` (n_index, n_kappa): 2D Fourier transform of a unit-flux Sersic profile of unit
  half-light radius, truncated at 8 half-light radii (the half-light radius is that of the
  truncated profile, as GalSim's ``Sersic(trunc=..., flux_untruncated=False)``), on a log grid
  of spatial frequency kappa (cycles per half-light radius).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import integrate, optimize, special

SEDS = ("E", "Sbc", "Scd", "Im")
PRESET_FILTERS = {
    "sdss": {"u": "sdss2010-u", "g": "sdss2010-g", "r": "sdss2010-r", "i": "sdss2010-i", "z": "sdss2010-z"},
    "decals": {"g": "decam2014-g", "r": "decam2014-r", "z": "decam2014-z"},
    "unions": {"u": "cfht_megacam-u", "g": "hsc2017-g", "r": "cfht_megacam-r", "i": "panstarrs-i", "z": "hsc2017-z"},
}
Z_GRID = np.round(np.arange(0.0, 0.7001, 0.0025), 6)
SERSIC_N = np.round(np.arange(0.5, 6.0001, 0.05), 4)
TRUNC = 8.0  # in half-light radii
LOG_KAPPA = np.linspace(np.log(1e-4), np.log(300.0), 1200)


def read_ecsv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength (Angstrom) and response of a speclite ``.ecsv`` filter file."""
    text = path.read_text().splitlines()
    unit_nm = any("unit: nm" in line for line in text if line.startswith("#"))
    rows = [line.split() for line in text if line and not line.startswith("#")][1:]
    table = np.array(rows, dtype=float)
    wave = table[:, 0] * (10.0 if unit_nm else 1.0)
    return wave, table[:, 1]


def read_sed(name: str) -> tuple[np.ndarray, np.ndarray]:
    import galsim  # dev-only: the templates ship with GalSim

    path = Path(galsim.meta_data.share_dir) / "SEDs" / f"CWW_{name}_ext.sed"
    table = np.loadtxt(path)
    return table[:, 0], table[:, 1]


def mean_fnu(sed_wave, sed_flam, filt_wave, filt_resp, z: float) -> float:
    """<f_nu>_band of the template redshifted to z (photon-counting AB convention), times (1+z)."""
    wave = np.linspace(filt_wave[0], filt_wave[-1], 4000)
    resp = np.interp(wave, filt_wave, filt_resp, left=0.0, right=0.0)
    rest = wave / (1.0 + z)
    fnu_rest = np.interp(rest, sed_wave, sed_flam) * rest**2  # f_nu ∝ f_lambda lambda^2
    num = np.trapezoid(fnu_rest * resp / wave, wave)
    den = np.trapezoid(resp / wave, wave)
    return (1.0 + z) * num / den


def kcorrections(filters_dir: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    seds = {name: read_sed(name) for name in SEDS}
    r_wave, r_resp = read_ecsv(filters_dir / "sdss2010-r.ecsv")
    g_wave, g_resp = read_ecsv(filters_dir / "sdss2010-g.ecsv")
    rest_r = {s: mean_fnu(*seds[s], r_wave, r_resp, 0.0) for s in SEDS}
    out["rest_gr"] = np.array(
        [-2.5 * np.log10(mean_fnu(*seds[s], g_wave, g_resp, 0.0) / rest_r[s]) for s in SEDS]
    )
    for preset, bands in PRESET_FILTERS.items():
        table = np.zeros((len(SEDS), len(bands), len(Z_GRID)))
        for b, fname in enumerate(bands.values()):
            fw, fr = read_ecsv(filters_dir / f"{fname}.ecsv")
            for s, name in enumerate(SEDS):
                for k, z in enumerate(Z_GRID):
                    table[s, b, k] = -2.5 * np.log10(mean_fnu(*seds[name], fw, fr, z) / rest_r[name])
        out[f"kcorr_{preset}"] = table
        out[f"bands_{preset}"] = np.array(list(bands))
    return out


def sersic_scale(n: float) -> float:
    """Scale s such that exp(-(r/s)^(1/n)) truncated at TRUNC has half-light radius 1."""

    def enclosed(r_max: float, s: float) -> float:
        # ∫ exp(-(r/s)^(1/n)) 2 pi r dr = 2 pi n s^2 gamma(2n) P(2n, (r/s)^(1/n))
        return special.gammainc(2 * n, (r_max / s) ** (1.0 / n))

    return optimize.brentq(lambda s: enclosed(1.0, s) - 0.5 * enclosed(TRUNC, s), 1e-8, 10.0, xtol=1e-14)


def sersic_ft_table() -> np.ndarray:
    # radius grid: log-spaced near the cusp, fine linear beyond (resolves J0 up to kappa=300)
    r_log = np.geomspace(1e-9, 0.05, 4000, endpoint=False)
    r_lin = np.linspace(0.05, TRUNC, 60000)
    r = np.concatenate([r_log, r_lin])
    weights = np.zeros_like(r)  # trapezoid weights on the non-uniform grid
    dr = np.diff(r)
    weights[:-1] += dr / 2
    weights[1:] += dr / 2
    profiles = []
    for n in SERSIC_N:
        s = sersic_scale(float(n))
        prof = np.exp(-((r / s) ** (1.0 / n)))
        prof /= np.sum(prof * 2 * np.pi * r * weights)
        profiles.append(prof * 2 * np.pi * r * weights)
    profiles = np.array(profiles)  # (n_index, n_r)
    kappa = np.exp(LOG_KAPPA)
    table = np.zeros((len(SERSIC_N), len(kappa)))
    for start in range(0, len(kappa), 50):
        j0 = special.j0(2 * np.pi * kappa[start : start + 50, None] * r[None, :])
        table[:, start : start + 50] = profiles @ j0.T
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--filters-dir", type=Path, required=True, help="speclite/data/filters folder")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "src/astrobench/datasets/sim/tables.npz"
    )
    args = parser.parse_args()
    tables = kcorrections(args.filters_dir)
    tables["sersic_ft"] = sersic_ft_table()
    tables.update(z_grid=Z_GRID, sersic_n=SERSIC_N, log_kappa=LOG_KAPPA, seds=np.array(SEDS), trunc=np.array(TRUNC))
    meta = {"seds": "GalSim share/SEDs CWW_*_ext.sed", "filters": PRESET_FILTERS, "speclite": "1.0.0"}
    tables["sources_json"] = np.array(json.dumps(meta))
    np.savez_compressed(args.out, **tables)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

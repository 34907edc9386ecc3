"""The galaxy population: who is in each stamp, drawn from per-object uniforms (no global state).

Three sub-populations, mixed so the tasks are hard in the way they are on real data:
- the **main sample**, magnitude-limited (SDSS main-sample-like for ``sdss``): redshift and absolute
  magnitude drawn jointly from volume x Schechter luminosity function above the limit (Planck18
  distances, per-template K-corrections), so the redshift distribution peaks near 0.1 with a tail
  to ~0.4, and distant galaxies are luminous and small;
- **dwarfs** (log M* < 9): nearby (0.012 < z < 0.045), diffuse, low surface brightness, smooth
  (dE/dSph) or clumpy (dIrr), down to the faint limit;
- **look-alikes**, the contaminants of a dwarf search: background galaxies (0.06 < z < 0.32; compact
  early types, small disks, blue clumpy irregulars) with the apparent magnitudes of the dwarfs and
  overlapping apparent sizes, a quarter of all stamps, so that brightness and size alone do not
  separate the classes; surface-brightness profile, structure and colour do.
Every stamp also gets neighbours and field stars independent of the labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import special

from astrobench.datasets.sim.presets import SurveyPreset
from astrobench.datasets.sim.render import ArmModulations, Components
from astrobench.datasets.sim.tables import SED_E, SED_IM, SED_SBC, SED_SCD, load_tables

MORPHOLOGY_CLASSES = ("elliptical", "lenticular", "spiral", "barred_spiral", "edge_on", "irregular", "merger")
E, S0, SP, SB, EDGE, IRR, MERGER = range(7)
MAIN_TYPE_FRACTIONS = {E: 0.18, S0: 0.16, SP: 0.33, SB: 0.17, IRR: 0.07, MERGER: 0.09}
DWARF_FRACTION = 0.16  # of all stamps drawn from the dwarf sample
LOOKALIKE_FRACTION = 0.26  # faint background galaxies: what a dwarf search must reject
DWARF_Z = (0.012, 0.045)  # p(z) ∝ z: nearby enough to be resolved, far enough to fit the stamp
DWARF_MASS_SKEW = 0.8  # log M* = floor + (9 - floor) u^skew
LOOKALIKE_Z = (0.06, 0.32)
LOOKALIKE_MIN_MASS = 9.2  # log M*: look-alikes are never dwarfs
LOOKALIKE_MAG_RANGE, LOOKALIKE_MAG_SKEW = 4.5, 2.0  # apparent r: faint limit - range * u^skew
LOOKALIKE_SIZE_EARLY, LOOKALIKE_SIZE_LATE = (0.4, 1.8), (0.7, 3.2)  # half-light radius, arcsec
MAX_KNOTS = 8
MAX_NEIGHBOURS = 3
MAX_STARS = 2
SCHECHTER_M_STAR, SCHECHTER_ALPHA = -21.3, -1.05  # r band, h = 0.68 (Blanton et al. 2003)
ARCSEC_PER_RAD = 206264.806

# Named columns of each object's uniform vector (order is part of the generator version).
_BLOCKS = {
    "population": 1, "type": 1, "z": 1, "mag": 1, "mass": 1, "ml_scatter": 1, "size": 1, "bulge_size": 1,
    "bt": 1, "n_bulge": 1, "n_disk": 1, "q_bulge": 1, "cos_i": 1, "angle": 1, "sed": 1, "x": 1, "y": 1,
    "bar_flux": 1, "bar_len": 1, "bar_q": 1, "bar_angle": 1,
    "arm_m": 1, "arm_pitch": 1, "arm_amp": 1, "arm_phase": 1, "arm_sharp": 1,
    "knot_frac": 1, "knot_count": 1, "knot_share": MAX_KNOTS, "knot_r": MAX_KNOTS, "knot_turn": MAX_KNOTS,
    "knot_jitter": MAX_KNOTS, "knot_size": MAX_KNOTS,
    "comp_ratio": 1, "comp_sep": 1, "comp_angle": 1, "comp_n": 1, "comp_q": 1, "comp_pa": 1, "comp_sed": 1,
    "nb_count": 1, "nb_x": MAX_NEIGHBOURS, "nb_y": MAX_NEIGHBOURS, "nb_mag": MAX_NEIGHBOURS, "nb_z": MAX_NEIGHBOURS,
    "nb_size": MAX_NEIGHBOURS, "nb_n": MAX_NEIGHBOURS, "nb_q": MAX_NEIGHBOURS, "nb_pa": MAX_NEIGHBOURS,
    "nb_sed": MAX_NEIGHBOURS,
    "star_count": 1, "star_x": MAX_STARS, "star_y": MAX_STARS, "star_mag": MAX_STARS, "star_color": MAX_STARS,
    "ebv": 1, "ra": 1, "dec": 1, "seeing": 1, "seeing_band": 5, "sky": 1, "sky_band": 5,
    "bad_column": 1, "bad_band": 1, "bad_x": 1, "bleed": 1,
    "votes": 1, "vote_noise": 8, "sed_tilt": 1, "colour_jitter": 5,
}
_OFFSETS: dict[str, slice] = {}
_start = 0
for _name, _width in _BLOCKS.items():
    _OFFSETS[_name] = slice(_start, _start + _width)
    _start += _width
N_UNIFORMS = _start


class Draws:
    """Per-object uniforms by name: ``d.u("z")`` is (N,), ``d.u("knot_r")`` is (N, 8)."""

    def __init__(self, uniforms: np.ndarray):
        if uniforms.ndim != 2 or uniforms.shape[1] != N_UNIFORMS:
            raise ValueError(f"uniforms must be (N, {N_UNIFORMS}), got {uniforms.shape}")
        self.values = np.clip(uniforms, 1e-12, 1 - 1e-12)

    def u(self, name: str) -> np.ndarray:
        block = self.values[:, _OFFSETS[name]]
        return block[:, 0] if block.shape[1] == 1 else block

    def normal(self, name: str) -> np.ndarray:
        return special.ndtri(self.u(name))


COSMOLOGY_PATH = Path(__file__).with_name("cosmology.npz")


def planck18_grids_from_astropy() -> dict[str, np.ndarray]:
    """The Planck18 distances and volumes the population uses, computed with astropy (what
    ``cosmology.npz`` holds: ``python -c "from astrobench.datasets.sim.population import
    write_planck18_grids; write_planck18_grids()"`` rewrites it)."""
    from astropy.cosmology import Planck18

    z = np.linspace(0.0, 0.8, 1601)
    z[0] = 1e-5
    z_volume = np.linspace(0.003, 0.6, 1200)
    return {"z": z, "luminosity_distance": Planck18.luminosity_distance(z).value,
            "angular_diameter_distance": Planck18.angular_diameter_distance(z).value,
            "z_volume": z_volume, "differential_comoving_volume": Planck18.differential_comoving_volume(z_volume).value}


def write_planck18_grids(path: Path = COSMOLOGY_PATH) -> Path:
    np.savez(path, **planck18_grids_from_astropy())
    return path


@lru_cache(maxsize=1)
def planck18_grids() -> dict[str, np.ndarray]:
    """Package data: the simulator needs no astropy to run (a GPU machine may lack it), and its
    distances never move with astropy's version (a test checks them against astropy)."""
    if not COSMOLOGY_PATH.is_file():
        raise FileNotFoundError(f"simulator package data {COSMOLOGY_PATH} is missing; rebuild it with write_planck18_grids()")
    with np.load(COSMOLOGY_PATH) as grids:
        return {name: grids[name] for name in grids.files}


def distances() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z grid, luminosity distance and angular-diameter distance (Mpc), Planck18."""
    grids = planck18_grids()
    return grids["z"], grids["luminosity_distance"], grids["angular_diameter_distance"]


def distance_modulus(z: np.ndarray) -> np.ndarray:
    zg, dl, _ = distances()
    return 5 * np.log10(np.interp(z, zg, dl) * 1e5)


def kpc_per_arcsec(z: np.ndarray) -> np.ndarray:
    zg, _, da = distances()
    return np.interp(z, zg, da) * 1e3 / ARCSEC_PER_RAD


@lru_cache(maxsize=8)
def _main_sample_grids(preset_name: str, mag_limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CDF of z for the magnitude-limited main sample, and the Schechter CDF over M_r."""
    tables = load_tables()
    mags = np.linspace(-24.0, -12.0, 2401)
    lum = 10 ** (-0.4 * (mags - SCHECHTER_M_STAR))
    phi = lum ** (SCHECHTER_ALPHA + 1) * np.exp(-lum)
    mag_cdf = np.concatenate([[0.0], np.cumsum(0.5 * (phi[1:] + phi[:-1]))])
    mag_cdf /= mag_cdf[-1]
    grids = planck18_grids()
    z = grids["z_volume"]
    kc = tables.kcorrection(preset_name, np.full(z.shape, SED_SBC), z)[:, get_r_band(preset_name)]
    m_limit = mag_limit - distance_modulus(z) - kc
    visible = np.interp(m_limit, mags, mag_cdf)
    weight = grids["differential_comoving_volume"] * visible
    z_cdf = np.concatenate([[0.0], np.cumsum(0.5 * (weight[1:] + weight[:-1]))])
    return z, z_cdf / z_cdf[-1], np.stack([mags, mag_cdf])


def get_r_band(preset_name: str) -> int:
    from astrobench.datasets.sim.presets import get_preset

    return get_preset(preset_name).r_band


@dataclass
class Population:
    """Truth of the central galaxies plus the components to draw (one scene per object)."""

    morphology: np.ndarray
    redshift: np.ndarray
    log_stellar_mass: np.ndarray
    dwarf: np.ndarray
    half_light_radius_arcsec: np.ndarray
    mags: np.ndarray  # (N, C) true, extinction-free
    ebv: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    psf_fwhm: np.ndarray  # (N, C) arcsec
    sky: np.ndarray  # (N, C) nanomaggies / pixel
    gain: np.ndarray  # (N, C) electrons / nanomaggy
    votes: dict[str, np.ndarray]
    components: Components
    arms: ArmModulations
    bad_column: np.ndarray  # (N, 3) int: has bad column, band, x
    bleed: np.ndarray  # (N,) pixels of saturation bleed
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def _loguniform(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return lo * (hi / lo) ** u


def _uniform(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return lo + (hi - lo) * u


def _powerlaw_mag(u: np.ndarray, lo: float, hi: float, slope: float) -> np.ndarray:
    """Magnitudes with dN/dm ∝ 10^(slope m) on [lo, hi] (galaxy and star counts)."""
    a, b = 10 ** (slope * lo), 10 ** (slope * hi)
    return np.log10(a + (b - a) * u) / slope


def _mass_to_light(gr_rest: np.ndarray) -> np.ndarray:
    """log10 M*/L_r from rest-frame g-r (Bell et al. 2003)."""
    return -0.306 + 1.097 * gr_rest


def sample_population(preset: SurveyPreset, uniforms: np.ndarray) -> Population:
    """Draw every object's truth and scene from its own row of uniforms."""
    d = Draws(uniforms)
    tables = load_tables()
    n = len(uniforms)
    rb = preset.r_band
    kind = np.where(d.u("population") < DWARF_FRACTION, 1, np.where(d.u("population") < DWARF_FRACTION + LOOKALIKE_FRACTION, 2, 0))
    is_dwarf_sample, is_lookalike = kind == 1, kind == 2

    # -- types ---------------------------------------------------------------------------------
    types_, probs = np.array(list(MAIN_TYPE_FRACTIONS)), np.array(list(MAIN_TYPE_FRACTIONS.values()))
    gtype = types_[np.searchsorted(np.cumsum(probs) / probs.sum(), d.u("type"))]
    dwarf_irregular = d.u("type") < 0.45
    gtype = np.where(is_dwarf_sample, np.where(dwarf_irregular, IRR, E), gtype)
    # look-alikes: compact early types, small disks and blue compact star-forming galaxies
    lookalike_types = np.array([E, S0, SP, SP, IRR])
    gtype = np.where(is_lookalike, lookalike_types[np.minimum((d.u("type") * 5).astype(int), 4)], gtype)

    bt = np.select(
        [gtype == E, gtype == S0, gtype == SB, gtype == SP, gtype == MERGER],
        [np.ones(n), _uniform(d.u("bt"), 0.35, 0.7), _uniform(d.u("bt"), 0.1, 0.4), _uniform(d.u("bt"), 0.03, 0.4),
         _uniform(d.u("bt"), 0.2, 0.6)],
        default=0.0,
    )
    bt = np.where(is_dwarf_sample, 0.0, bt)  # dwarfs: one diffuse component
    disk_sed = np.where(gtype == S0, SED_E, np.where(bt < 0.15, SED_SCD, SED_SBC))
    disk_sed = np.where(gtype == IRR, SED_IM, disk_sed)
    disk_sed = np.where(is_dwarf_sample & ~dwarf_irregular, np.where(d.u("sed") < 0.5, SED_SBC, SED_E), disk_sed)
    disk_sed = np.where(is_dwarf_sample & dwarf_irregular, np.where(d.u("sed") < 0.7, SED_IM, SED_SCD), disk_sed)
    gr_rest = bt * tables.rest_gr[SED_E] + (1 - bt) * tables.rest_gr[disk_sed]
    log_ml = _mass_to_light(gr_rest) + 0.08 * d.normal("ml_scatter")

    # -- redshift and luminosity ---------------------------------------------------------------
    z_grid, z_cdf, mag_table = _main_sample_grids(preset.name, preset.main_mag_limit)
    z = np.interp(d.u("z"), z_cdf, z_grid)
    k_main = tables.kcorrection(preset.name, np.where(bt > 0.5, SED_E, disk_sed), z)[:, rb]
    m_limit = preset.main_mag_limit - distance_modulus(z) - k_main
    cdf_lo = np.interp(-23.8, mag_table[0], mag_table[1])
    cdf_hi = np.interp(m_limit, mag_table[0], mag_table[1])
    abs_mag = np.interp(cdf_lo + (cdf_hi - cdf_lo) * d.u("mag"), mag_table[1], mag_table[0])
    log_mass = -0.4 * (abs_mag - 4.65) + log_ml

    # dwarfs: nearby, mass up to 10^9 and bright enough for the faint limit
    z_dwarf = np.sqrt(DWARF_Z[0] ** 2 + (DWARF_Z[1] ** 2 - DWARF_Z[0] ** 2) * d.u("z"))
    k_dwarf = tables.kcorrection(preset.name, disk_sed, z_dwarf)[:, rb]
    mag_faint = preset.faint_mag_limit - distance_modulus(z_dwarf) - k_dwarf
    mass_floor = np.maximum(7.0, -0.4 * (mag_faint - 4.65) + log_ml)
    mass_dwarf = mass_floor + (9.0 - mass_floor) * d.u("mass") ** DWARF_MASS_SKEW
    abs_dwarf = 4.65 - 2.5 * (mass_dwarf - log_ml)
    # look-alikes: background, with the apparent magnitudes of the dwarfs
    z_look = _uniform(d.u("z"), *LOOKALIKE_Z)
    app_look = preset.faint_mag_limit - LOOKALIKE_MAG_RANGE * d.u("mag") ** LOOKALIKE_MAG_SKEW
    look_sed = np.where(bt > 0.5, SED_E, disk_sed)
    # ... and too massive to be dwarfs (log M* >= 9.2): a faint blue one is pushed further away
    abs_needed = 4.65 - 2.5 * (LOOKALIKE_MIN_MASS - log_ml)
    zg = np.linspace(LOOKALIKE_Z[0], 0.6, 600)
    for _ in range(2):  # the K-correction depends weakly on z: two fixed-point steps suffice
        k_look = tables.kcorrection(preset.name, look_sed, z_look)[:, rb]
        z_needed = np.interp(app_look - abs_needed - k_look, distance_modulus(zg), zg)
        z_look = np.maximum(z_look, z_needed)
    k_look = tables.kcorrection(preset.name, look_sed, z_look)[:, rb]
    abs_look = app_look - distance_modulus(z_look) - k_look
    z = np.select([is_dwarf_sample, is_lookalike], [z_dwarf, z_look], z)
    abs_mag = np.select([is_dwarf_sample, is_lookalike], [abs_dwarf, abs_look], abs_mag)
    log_mass = -0.4 * (abs_mag - 4.65) + log_ml

    # -- sizes (kpc, circularised half-light radii) ---------------------------------------------
    size_noise = d.normal("size")
    re_early = 10 ** (0.52 + 0.56 * (log_mass - 11.0) + 0.15 * size_noise)
    re_late = 10 ** (0.62 + 0.25 * (log_mass - 10.5) + 0.17 * size_noise)
    re_dwarf = 10 ** (0.15 + 0.28 * (log_mass - 8.5) + 0.15 * size_noise)
    re_disk_kpc = np.where(bt > 0.5, re_early * 1.3, re_late)
    re_disk_kpc = np.where(is_dwarf_sample | (log_mass < 8.8), re_dwarf, re_disk_kpc)
    # look-alikes are selected to overlap the dwarfs in apparent size (a dwarf search's contaminants)
    look_early = np.isin(gtype, (E, S0))
    re_look_arcsec = np.where(look_early, _loguniform(d.u("size"), *LOOKALIKE_SIZE_EARLY), _loguniform(d.u("size"), *LOOKALIKE_SIZE_LATE))
    re_look_kpc = re_look_arcsec * kpc_per_arcsec(z)
    re_disk_kpc = np.where(is_lookalike, re_look_kpc, re_disk_kpc)
    re_bulge_kpc = np.where(gtype == E, re_early, re_disk_kpc * _uniform(d.u("bulge_size"), 0.12, 0.45))
    re_bulge_kpc = np.where(is_lookalike & (gtype == E), re_look_kpc, re_bulge_kpc)
    scale = kpc_per_arcsec(z)
    re_disk_px = re_disk_kpc / scale / preset.pixel_scale
    re_bulge_px = re_bulge_kpc / scale / preset.pixel_scale

    n_bulge = np.where(gtype == E, _uniform(d.u("n_bulge"), 3.0, 5.5), _uniform(d.u("n_bulge"), 1.5, 4.0))
    n_bulge = np.where(is_lookalike, _uniform(d.u("n_bulge"), 2.5, 5.0), n_bulge)
    n_disk = np.where(is_dwarf_sample, _uniform(d.u("n_disk"), 0.5, 1.0), 1.0)
    n_disk = np.where(gtype == IRR, _uniform(d.u("n_disk"), 0.6, 1.2), n_disk)

    # -- orientation ---------------------------------------------------------------------------
    cos_i = d.u("cos_i")
    has_thin_disk = np.isin(gtype, (S0, SP, SB)) & ~is_dwarf_sample
    q_disk = np.sqrt(cos_i**2 + 0.12**2 * (1 - cos_i**2))
    q_disk = np.where(has_thin_disk | (gtype == MERGER), q_disk, _uniform(cos_i, 0.45, 0.95))
    q_bulge = np.where(gtype == E, _uniform(d.u("q_bulge"), 0.55, 1.0), _uniform(d.u("q_bulge"), 0.6, 0.95))
    q_bulge = np.where(has_thin_disk, np.maximum(q_bulge * np.maximum(q_disk, 0.5), 0.4), q_bulge)
    angle = d.u("angle") * np.pi
    morphology = np.where(has_thin_disk & (cos_i < 0.2), EDGE, gtype)
    x0 = preset.stamp / 2 + d.u("x") - 0.5
    y0 = preset.stamp / 2 + d.u("y") - 0.5

    # -- fluxes per component (rest-frame r split, then through each template) -------------------
    lum_r = 10 ** (-0.4 * abs_mag)
    has_bar = gtype == SB
    bar_frac = np.where(has_bar, _uniform(d.u("bar_flux"), 0.08, 0.2), 0.0)
    # background spirals are too small for resolved knots; background irregulars are clumpy like dIrr
    knotty = (np.isin(gtype, (SP, SB, IRR, MERGER)) & ~is_lookalike) | (is_lookalike & (gtype == IRR)) | (
        is_dwarf_sample & dwarf_irregular)
    knot_frac = np.where(knotty, _uniform(d.u("knot_frac"), 0.04, 0.18), 0.0)
    knot_frac = np.where(gtype == IRR, knot_frac * 1.8, knot_frac)
    lum_bulge = lum_r * bt
    lum_disk_total = lum_r * (1 - bt)
    lum_bar = lum_disk_total * bar_frac
    lum_knots = lum_disk_total * knot_frac
    lum_disk = lum_disk_total - lum_bar - lum_knots
    dm = distance_modulus(z)

    def band_flux(lum: np.ndarray, sed: np.ndarray, zz: np.ndarray, mod: np.ndarray) -> np.ndarray:
        mag = -2.5 * np.log10(np.maximum(lum, 1e-30))[:, None] + mod[:, None] + tables.kcorrection(preset.name, sed, zz)
        return 10 ** (-0.4 * (mag - 22.5))

    f_bulge = band_flux(lum_bulge, np.full(n, SED_E), z, dm)
    f_disk = band_flux(lum_disk, disk_sed, z, dm)
    f_bar = band_flux(lum_bar, np.where(disk_sed == SED_SCD, SED_SBC, SED_E), z, dm)
    f_knots = band_flux(lum_knots, np.full(n, SED_IM), z, dm)
    # intrinsic SED variety beyond four templates: a tilt in log wavelength plus per-band jitter
    n_bands = len(preset.bands)
    band_order = np.arange(n_bands) - rb
    colour_shift = 0.06 * d.normal("sed_tilt")[:, None] * band_order + 0.03 * d.normal("colour_jitter")[:, :n_bands]
    colour_factor = 10 ** (-0.4 * colour_shift)
    f_bulge, f_disk, f_bar, f_knots = (f * colour_factor for f in (f_bulge, f_disk, f_bar, f_knots))
    f_galaxy = f_bulge + f_disk + f_bar + f_knots  # true, before extinction
    mags = 22.5 - 2.5 * np.log10(f_galaxy)

    # -- observing conditions ---------------------------------------------------------------------
    from astrobench.photometry import extinction_coefficients

    ebv = np.minimum(0.005 - 0.03 * np.log(d.u("ebv")), 0.4)
    ext = 10 ** (-0.4 * np.outer(ebv, extinction_coefficients(preset.bands, preset.extinction_survey)))
    seeing_r = np.clip(preset.seeing_r * np.exp(0.15 * d.normal("seeing")), 0.65 * preset.seeing_r, 2.0 * preset.seeing_r)
    psf_fwhm = seeing_r[:, None] * np.asarray(preset.seeing_band_factor) * np.exp(0.03 * d.normal("seeing_band")[:, :n_bands])
    sky0, gain0 = preset.noise_model()
    sky = sky0 * np.exp(0.2 * d.normal("sky")[:, None] + 0.05 * d.normal("sky_band")[:, :n_bands])
    gain = np.broadcast_to(gain0, sky.shape).copy()

    # -- components ------------------------------------------------------------------------------
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("owner", "flux", "n", "re", "q", "angle", "x", "y")}

    def add(mask: np.ndarray, flux, n_idx, re, q, ang, x, y) -> None:
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return
        pick = lambda a: np.broadcast_to(np.asarray(a), (n,) + np.shape(a)[1:])[idx]  # noqa: E731
        rows["owner"].append(idx)
        rows["flux"].append(pick(flux) * ext[idx])
        for key, value in (("n", n_idx), ("re", re), ("q", q), ("angle", ang), ("x", x), ("y", y)):
            rows[key].append(pick(value))

    add(bt > 0, f_bulge, n_bulge, re_bulge_px, q_bulge, angle, x0, y0)
    add(bt < 1, f_disk, n_disk, re_disk_px, q_disk, angle, x0, y0)
    # bar: flat elongated profile in the disk plane, projected (approximately) onto the sky
    bar_angle = angle + _uniform(d.u("bar_angle"), -1.2, 1.2) * np.minimum(1.0, 2 * q_disk)
    add(has_bar, f_bar, 0.6, re_disk_px * _uniform(d.u("bar_len"), 0.35, 0.7), _uniform(d.u("bar_q"), 0.22, 0.38),
        bar_angle, x0, y0)

    # spiral arms / tidal features / lopsidedness: modulation of the disk
    arm_m = np.where(d.u("arm_m") < 0.65, 2, np.where(d.u("arm_m") < 0.85, 3, 4))
    pitch = np.deg2rad(_uniform(d.u("arm_pitch"), 12, 30))
    amp = _uniform(d.u("arm_amp"), 0.35, 0.8) * np.clip(q_disk * 1.5, 0, 1)
    sharp = _uniform(d.u("arm_sharp"), 1.0, 3.0)
    is_merger = gtype == MERGER
    arm_m = np.select([is_merger, gtype == IRR], [np.where(d.u("arm_m") < 0.5, 1, 2), 1], arm_m)
    pitch = np.where(is_merger, np.deg2rad(_uniform(d.u("arm_pitch"), 35, 55)), pitch)
    amp = np.select([is_merger, gtype == IRR], [np.full(n, 0.9), 0.5 * d.u("arm_amp")], amp)
    has_arms = np.isin(gtype, (SP, SB, MERGER, IRR)) & ~is_lookalike & ~is_dwarf_sample
    a_idx = np.flatnonzero(has_arms)
    scale_length = re_disk_px / np.sqrt(q_disk) / 1.678
    arms = ArmModulations(
        owner=a_idx, flux=(f_disk * ext)[a_idx], scale_length=scale_length[a_idx], q=q_disk[a_idx], angle=angle[a_idx],
        x=x0[a_idx], y=y0[a_idx], arms=arm_m[a_idx].astype(float), pitch=pitch[a_idx], amplitude=amp[a_idx],
        phase=2 * np.pi * d.u("arm_phase")[a_idx], sharpness=sharp[a_idx],
    )

    # star-forming knots: on the arm ridges for spirals, scattered for irregulars
    n_knots = np.where(knotty, 1 + (d.u("knot_count") * MAX_KNOTS).astype(int), 0)
    share = -np.log(d.u("knot_share")) * (np.arange(MAX_KNOTS)[None, :] < n_knots[:, None])
    share = share / np.maximum(share.sum(1, keepdims=True), 1e-12)
    knot_r = scale_length[:, None] * _uniform(d.u("knot_r"), 0.5, 3.0)
    ridge = (2 * np.pi * d.u("arm_phase")[:, None] + 2 * np.pi * np.floor(d.u("knot_turn") * arm_m[:, None])) / arm_m[:, None]
    theta = ridge + np.log(knot_r / scale_length[:, None]) / np.tan(pitch)[:, None]
    scattered = ~has_arms | (gtype == IRR)
    theta = np.where(scattered[:, None], 2 * np.pi * d.u("knot_turn"), theta + 0.3 * (d.u("knot_jitter") - 0.5))
    knot_r = np.where(scattered[:, None], scale_length[:, None] * 2.0 * np.sqrt(-np.log(d.u("knot_r"))), knot_r)
    u_k, v_k = knot_r * np.cos(theta), knot_r * np.sin(theta) * q_disk[:, None]
    ca, sa = np.cos(angle)[:, None], np.sin(angle)[:, None]
    knot_x, knot_y = x0[:, None] + ca * u_k - sa * v_k, y0[:, None] + sa * u_k + ca * v_k
    knot_re = np.maximum(0.15 / scale / preset.pixel_scale, 0.05)[:, None] * _loguniform(d.u("knot_size"), 0.7, 2.5)
    for k in range(MAX_KNOTS):
        add(share[:, k] > 0, f_knots * share[:, k, None], 0.5, knot_re[:, k], 1.0, 0.0, knot_x[:, k], knot_y[:, k])

    # merger companion
    ratio = _uniform(d.u("comp_ratio"), 0.3, 1.0)
    sep = re_disk_px * _uniform(d.u("comp_sep"), 0.8, 2.2) + 2.0
    comp_angle = 2 * np.pi * d.u("comp_angle")
    comp_sed = np.where(d.u("comp_sed") < 0.5, SED_E, SED_SBC)
    f_comp = band_flux(lum_r * ratio, comp_sed, z, dm)
    add(is_merger, f_comp, _uniform(d.u("comp_n"), 1.0, 4.0), re_disk_px * np.sqrt(ratio) * 0.7,
        _uniform(d.u("comp_q"), 0.4, 1.0), np.pi * d.u("comp_pa"), x0 + sep * np.cos(comp_angle), y0 + sep * np.sin(comp_angle))

    # neighbours: background galaxies anywhere in the stamp, independent of the central galaxy
    n_nb = np.searchsorted([0.3, 0.65, 0.88], d.u("nb_count"))
    stamp_arcmin2 = (preset.stamp * preset.pixel_scale / 60) ** 2
    nb_scale = np.sqrt(stamp_arcmin2 / 0.18)  # denser per stamp where stamps cover more sky
    n_nb = np.minimum(np.round(n_nb * nb_scale).astype(int), MAX_NEIGHBOURS)
    for k in range(MAX_NEIGHBOURS):
        zz = _uniform(d.u("nb_z")[:, k], 0.05, 0.65)
        sed = np.minimum((d.u("nb_sed")[:, k] * 4).astype(int), 3)
        app = _powerlaw_mag(d.u("nb_mag")[:, k], 17.0, preset.faint_mag_limit + 2.0, 0.35)
        kc = tables.kcorrection(preset.name, sed, zz)
        flux = 10 ** (-0.4 * (app[:, None] + kc - kc[:, rb : rb + 1] - 22.5))
        re_nb = _loguniform(d.u("nb_size")[:, k], 0.25, 1.6) * 10 ** (-0.2 * (app - 19)) / preset.pixel_scale
        add(k < n_nb, flux, _uniform(d.u("nb_n")[:, k], 0.7, 4.0), re_nb, _uniform(d.u("nb_q")[:, k], 0.3, 1.0),
            np.pi * d.u("nb_pa")[:, k], d.u("nb_x")[:, k] * preset.stamp - 0.5, d.u("nb_y")[:, k] * preset.stamp - 0.5)

    # field stars: point sources with main-sequence-like colours
    n_star = np.searchsorted([0.6, 0.9], d.u("star_count"))
    band_pos = np.array(["ugrizy".index(b) for b in preset.bands])
    for k in range(MAX_STARS):
        app = _powerlaw_mag(d.u("star_mag")[:, k], 12.5, preset.faint_mag_limit + 2.0, 0.22)
        gr = _uniform(d.u("star_color")[:, k], 0.25, 1.45)
        # colour offsets relative to r for u g r i z y: u-g ~ 0.6 + 1.4 (g-r), r-i ~ 0.45 (g-r)...
        offsets = np.stack([0.6 + 2.4 * gr, gr, 0 * gr, -0.45 * gr, -0.65 * gr, -0.75 * gr], axis=1)[:, band_pos]
        add(k < n_star, 10 ** (-0.4 * (app[:, None] + offsets - 22.5)), 0.5, 0.0, 1.0, 0.0,
            d.u("star_x")[:, k] * preset.stamp - 0.5, d.u("star_y")[:, k] * preset.stamp - 0.5)

    components = Components(
        owner=np.concatenate(rows["owner"]), flux=np.concatenate(rows["flux"]),
        sersic_row=tables.sersic_index(np.concatenate(rows["n"]).astype(float)),
        r_e=np.concatenate(rows["re"]).astype(float), q=np.concatenate(rows["q"]).astype(float),
        angle=np.concatenate(rows["angle"]).astype(float), x=np.concatenate(rows["x"]).astype(float),
        y=np.concatenate(rows["y"]).astype(float),
    )

    # -- truth -----------------------------------------------------------------------------------
    hlr_px = composite_half_light_radius(
        f_bulge[:, rb], re_bulge_px, tables.sersic_n[tables.sersic_index(n_bulge)],
        (f_disk + f_bar + f_knots)[:, rb], re_disk_px, tables.sersic_n[tables.sersic_index(n_disk)],
    )
    votes = galaxy_zoo_votes(d, morphology, hlr_px * preset.pixel_scale / seeing_r, amp, is_merger, ratio)
    bad = np.stack([d.u("bad_column") < 0.03, np.minimum((d.u("bad_band") * n_bands).astype(int), n_bands - 1),
                    (d.u("bad_x") * preset.stamp).astype(int)], axis=1)
    return Population(
        morphology=morphology.astype(np.int64), redshift=z, log_stellar_mass=log_mass, dwarf=log_mass < 9.0,
        half_light_radius_arcsec=hlr_px * preset.pixel_scale, mags=mags, ebv=ebv,
        ra=360.0 * d.u("ra"), dec=np.rad2deg(np.arcsin(_uniform(d.u("dec"), -0.17, 0.94))),
        psf_fwhm=psf_fwhm, sky=sky, gain=gain, votes=votes, components=components, arms=arms,
        bad_column=bad.astype(np.int64), bleed=(2 + 6 * d.u("bleed")).astype(np.int64),
        extra={"sample": kind, "x0": x0, "y0": y0},
    )


def composite_half_light_radius(f1, re1, n1, f2, re2, n2) -> np.ndarray:
    """Circularised half-light radius of two concentric Sersic profiles (bisection)."""

    def profile(flux, re, n):
        # what does not change over the bisection, computed once (gammaincinv was ~95% of the cost);
        # the same operations on the same values as inline, so the same bits
        with np.errstate(divide="ignore", invalid="ignore"):
            return flux, 2 * n, special.gammaincinv(2 * n, 0.5), np.maximum(re, 1e-9), 1 / n

    def enclosed(radius, flux, two_n, b, re, inverse_n):
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = special.gammainc(two_n, b * (radius / re) ** inverse_n)
        return np.where(flux > 0, flux * frac, 0.0)

    first, second = profile(f1, re1, n1), profile(f2, re2, n2)
    total = f1 + f2
    lo, hi = np.zeros_like(total), np.maximum(re1, re2) * 1.0001 + 1e-9
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        inside = enclosed(mid, *first) + enclosed(mid, *second) < 0.5 * total
        lo, hi = np.where(inside, mid, lo), np.where(inside, hi, mid)
    return 0.5 * (lo + hi)


def galaxy_zoo_votes(d: Draws, morphology, resolution, arm_amp, is_merger, companion_ratio) -> dict[str, np.ndarray]:
    """Galaxy-Zoo-2-style vote fractions from the truth plus volunteer noise (binomial-like).

    Poorly resolved galaxies (half-light radius small against the seeing) look smooth to
    volunteers, as in GZ2. ``gz_edge_on``, ``gz_spiral``, ``gz_bar``, ``gz_merger`` are fractions of
    the volunteers answering that question, as in the GZ2 tables.
    """
    smooth_base = np.array([0.88, 0.62, 0.14, 0.1, 0.3, 0.35, 0.3])[morphology]
    blur = np.exp(-np.clip(resolution, 0, None) / 1.2)
    p_smooth = smooth_base + (1 - smooth_base) * 0.6 * blur
    p_artifact = np.full_like(p_smooth, 0.02)
    volunteers = 25 + (d.u("votes") * 40).astype(int)
    noise = d.normal("vote_noise")

    def vote(p, k, count):
        p = np.clip(p, 0.005, 0.995)
        return np.clip(p + np.sqrt(p * (1 - p) / count) * noise[:, k], 0.0, 1.0)

    smooth = vote(p_smooth, 0, volunteers)
    artifact = np.minimum(vote(p_artifact, 1, volunteers), 1 - smooth)
    featured = np.clip(1 - smooth - artifact, 0.0, 1.0)
    answering = np.maximum(5, np.round(volunteers * np.maximum(featured, 0.1)))
    edge = vote(np.where(morphology == EDGE, 0.9, 0.04), 2, answering)
    spiral_p = np.select([np.isin(morphology, (2, 3)), morphology == 6, morphology == 5], [0.45 + 0.5 * arm_amp, 0.45, 0.25], 0.05)
    spiral = vote(spiral_p * (1 - 0.5 * blur), 3, answering)
    bar = vote(np.where(morphology == 3, 0.8 - 0.3 * blur, 0.06), 4, answering)
    merger = vote(np.where(is_merger, 0.55 + 0.35 * companion_ratio, 0.03), 5, volunteers)
    return {"gz_smooth": smooth, "gz_featured": featured, "gz_edge_on": edge, "gz_spiral": spiral, "gz_bar": bar, "gz_merger": merger}

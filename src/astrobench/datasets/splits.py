"""Deterministic train / val / test splits keyed by object id (independent of row order).

Fractions are configurable (``resolve_fractions``: the default 0.7 / 0.1 / 0.2, three numbers, or
"all" for the whole file in one split). Optionally grouped by sky position: with ``group_by_healpix_nside`` every object in one HEALPix
pixel (NESTED scheme) lands in the same split, so neighbours (overlapping cutouts, pairs, groups)
never straddle train and test. Pretraining and labelled data may be different datasets: each is
split on its own, by its own ids.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from astrobench.datasets.schema import DataError, SurveyData

DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
SPLIT_NAMES = ("train", "val", "test")
# "all": every object of the file in one split (a pretraining file, or a file given as the probe's
# training or test set); which split is the caller's choice (``resolve_fractions(.., whole=...)``)
ALL = "all"


def resolve_fractions(value: "str | dict[str, float] | None", whole: str = "train") -> dict[str, float]:
    """Split fractions from a config value: None (the default 0.7 / 0.1 / 0.2), ``"all"`` (every
    object in the split ``whole``), ``"0.8,0,0.2"`` (train, val, test) or ``{"train": .., "test": ..}``
    (missing names get 0). They must be >= 0 and sum to 1; an error names the value."""
    if value is None:
        return dict(DEFAULT_FRACTIONS)
    if isinstance(value, str) and value.strip().lower() == ALL:
        if whole not in SPLIT_NAMES:
            raise ValueError(f"split {whole!r} is not one of {list(SPLIT_NAMES)}")
        return {name: float(name == whole) for name in SPLIT_NAMES}
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",") if p]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) != len(SPLIT_NAMES):
            raise ValueError(f"split fractions {value!r}: give 'all' or three numbers 'train,val,test', e.g. '0.8,0,0.2'")
        value = dict(zip(SPLIT_NAMES, numbers))
    if not isinstance(value, dict):
        raise ValueError(f"split fractions must be 'all', 'train,val,test' or a mapping, got {value!r}")
    unknown = sorted(set(value) - set(SPLIT_NAMES))
    if unknown:
        raise ValueError(f"split fractions: unknown split(s) {unknown}; the splits are {list(SPLIT_NAMES)}")
    fractions = {name: float(value.get(name, 0.0)) for name in SPLIT_NAMES}
    if any(f < 0 for f in fractions.values()) or not np.isclose(sum(fractions.values()), 1.0):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions} (sum {sum(fractions.values()):g})")
    return fractions


def _unit_interval(keys: list[str], salt: str) -> np.ndarray:
    out = np.empty(len(keys), dtype=np.float64)
    for i, key in enumerate(keys):
        digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little") / 2**64
    return out


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Interleave zeros between the bits of ``v`` (< 2**29): bit k moves to bit 2k."""
    v = v.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    for shift, magic in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                         (2, 0x3333333333333333), (1, 0x5555555555555555)):  # fmt: skip
        v = (v | (v << np.uint64(shift))) & np.uint64(magic)
    return v


def healpix_nested(ra_deg: np.ndarray, dec_deg: np.ndarray, nside: int) -> np.ndarray:
    """HEALPix NESTED pixel index of each position (Gorski et al. 2005 ``ang2pix_nest``).

    ``nside`` must be a power of two; there are ``12 * nside**2`` pixels of equal area.
    """
    if nside < 1 or nside & (nside - 1):
        raise ValueError(f"HEALPix nside must be a power of two >= 1, got {nside}")
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    z = np.sin(np.radians(dec))
    za = np.abs(z)
    tt = np.mod(np.radians(ra) / (np.pi / 2), 4.0)  # in [0, 4)

    # equatorial belt |z| <= 2/3
    temp1 = nside * (0.5 + tt)
    temp2 = nside * (z * 0.75)
    jp = (temp1 - temp2).astype(np.int64)  # ascending edge line
    jm = (temp1 + temp2).astype(np.int64)  # descending edge line
    ifp, ifm = jp // nside, jm // nside
    face_eq = np.where(ifp == ifm, ifp | 4, np.where(ifp < ifm, ifp, ifm + 8))
    ix_eq = jm & (nside - 1)
    iy_eq = nside - (jp & (nside - 1)) - 1

    # polar caps
    ntt = np.minimum(3, tt.astype(np.int64))
    tp = tt - ntt
    tmp = nside * np.sqrt(3.0 * (1.0 - za))
    jp_p = np.minimum((tp * tmp).astype(np.int64), nside - 1)
    jm_p = np.minimum(((1.0 - tp) * tmp).astype(np.int64), nside - 1)
    north = z > 0
    face_po = np.where(north, ntt, ntt + 8)
    ix_po = np.where(north, nside - jm_p - 1, jp_p)
    iy_po = np.where(north, nside - jp_p - 1, jm_p)

    equatorial = za <= 2.0 / 3.0
    face = np.where(equatorial, face_eq, face_po).astype(np.uint64)
    ix = np.where(equatorial, ix_eq, ix_po)
    iy = np.where(equatorial, iy_eq, iy_po)
    return (face * np.uint64(nside * nside) + _spread_bits(ix) + (_spread_bits(iy) << np.uint64(1))).astype(np.int64)


def _group_keys(data: SurveyData, nside: int | None) -> list[str]:
    """Hash keys: the object id, or its HEALPix pixel when grouping (objects without a position
    fall back to their own id: they cannot be placed, so they are kept ungrouped)."""
    ids = data.object_id.astype(str).tolist()
    if nside is None:
        return ids
    ra = np.asarray(data.ra, dtype=np.float64)
    dec = np.asarray(data.dec, dtype=np.float64)
    known = np.isfinite(ra) & np.isfinite(dec)
    pixels = np.full(len(ids), -1, dtype=np.int64)
    if known.any():
        pixels[known] = healpix_nested(ra[known], dec[known], nside)
    return [f"healpix{nside}:{p}" if ok else i for i, p, ok in zip(ids, pixels, known)]


def split_indices(
    data: SurveyData,
    fractions: dict[str, float] | None = None,
    salt: str = "astrobench-split-v1",
    group_by_healpix_nside: int | None = None,
) -> dict[str, np.ndarray]:
    """Assign each object to a split by a hash of its id: adding objects never moves old ones.

    With ``group_by_healpix_nside`` the hash is of the object's HEALPix pixel instead, so all
    objects of a pixel share a split (nside 64: pixels of about 0.92 deg; 1024: about 3.4 arcmin).
    """
    fractions = fractions or DEFAULT_FRACTIONS
    total = sum(fractions.values())
    if not np.isclose(total, 1.0) or any(f < 0 for f in fractions.values()):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions} (sum {total})")
    whole = [name for name, f in fractions.items() if f == 1.0]
    if whole:  # "all": no hashing, so no rounding at the edges can leave an object out
        return {name: np.arange(len(data)) if name == whole[0] else np.arange(0) for name in fractions}
    u = _unit_interval(_group_keys(data, group_by_healpix_nside), salt)
    edges = np.cumsum([0.0, *fractions.values()])
    edges[-1] = 1.0 + 1e-12
    return {name: np.flatnonzero((u >= lo) & (u < hi)) for name, lo, hi in zip(fractions, edges[:-1], edges[1:])}


def draw_rows(index: np.ndarray, budget: int | None, seed: int | Sequence[int]) -> np.ndarray:
    """``budget`` rows of ``index`` drawn uniformly without replacement with ``seed``, sorted (all of
    them, as given, when ``budget`` is None or not smaller than ``len(index)``)."""
    if budget is None or budget >= len(index):
        return np.asarray(index)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(index, size=budget, replace=False))


def train_test_union(train: SurveyData, test: SurveyData) -> tuple[SurveyData, dict[str, np.ndarray]]:
    """One dataset holding every object of ``train`` then every object of ``test``, and the splits
    that say so (``train``: all rows of the first, ``test``: all of the second, ``val``: none).

    This is how a probe is fitted on one file and scored on all of another: tasks see one set of
    embeddings and its splits. Bands, image size and kind (flux or RGB) must agree, and no object
    id may be in both (results are keyed by id). A label only one file has is missing (NaN / -1) in
    the other; integer and float versions of one label become float (-1 -> NaN). ``ivar`` is kept
    when both files have it (evaluation embeds the plain image, so it does not need it).
    """
    where = f"{train.origin} (train) and {test.origin} (test)"
    if train.bands != test.bands or train.image.shape[1:] != test.image.shape[1:]:
        raise DataError(f"{where}: the files must have the same bands and image size, got {list(train.bands)} "
                        f"{train.image.shape[1:]} and {list(test.bands)} {test.image.shape[1:]}")
    if train.image_is_flux != test.image_is_flux:
        raise DataError(f"{where}: one file holds flux images and the other RGB composites")
    both = np.intersect1d(train.object_id.astype(str), test.object_id.astype(str))
    if both.size:
        raise DataError(f"{where}: {both.size} object id(s) are in both files, e.g. {both[:5].tolist()}: "
                        "an object cannot be both fitted on and scored")
    n_train, n_test = len(train), len(test)
    labels = {name: _joined_label(train.labels.get(name), test.labels.get(name), n_train, n_test)
              for name in sorted(set(train.labels) | set(test.labels))}
    join = lambda a, b: np.concatenate([np.asarray(a), np.asarray(b)])  # noqa: E731
    data = SurveyData(
        object_id=join(train.object_id.astype(str), test.object_id.astype(str)),
        image=join(train.image, test.image), mask=join(train.mask, test.mask), bands=train.bands,
        pixel_scale=join(train.pixel_scale, test.pixel_scale), psf_fwhm=join(train.psf_fwhm, test.psf_fwhm),
        ebv=join(train.ebv, test.ebv), ra=join(train.ra, test.ra), dec=join(train.dec, test.dec),
        ivar=join(train.ivar, test.ivar) if train.ivar is not None and test.ivar is not None else None,
        labels=labels, image_is_flux=train.image_is_flux,
        manifest={"source": "train+test", "train": _identity(train), "test": _identity(test)},
        origin=f"{train.origin} + {test.origin}",
    )
    splits = {"train": np.arange(n_train), "val": np.arange(0), "test": np.arange(n_train, n_train + n_test)}
    return data.validate(), splits


def _identity(data: SurveyData) -> str:
    return data.manifest.get("content_hash") or data.content_hash()


def _joined_label(a: np.ndarray | None, b: np.ndarray | None, n_a: int, n_b: int) -> np.ndarray:
    parts = [p for p in (a, b) if p is not None]
    if all(p.dtype.kind in "iu" for p in parts):
        fill = lambda p, n: p if p is not None else np.full((n, *parts[0].shape[1:]), -1, np.int64)  # noqa: E731
        return np.concatenate([fill(a, n_a).astype(np.int64), fill(b, n_b).astype(np.int64)])

    def as_float(p: np.ndarray | None, n: int) -> np.ndarray:
        if p is None:
            return np.full((n, *parts[0].shape[1:]), np.nan)
        return np.where(p == -1, np.nan, p).astype(np.float64) if p.dtype.kind in "iu" else p.astype(np.float64)

    return np.concatenate([as_float(a, n_a), as_float(b, n_b)])

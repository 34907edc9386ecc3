"""Deterministic train / val / test splits keyed by object id (independent of row order).

Optionally grouped by sky position: with ``group_by_healpix_nside`` every object in one HEALPix
pixel (NESTED scheme) lands in the same split, so neighbours (overlapping cutouts, pairs, groups)
never straddle train and test. Pretraining and labelled data may be different datasets: each is
split on its own, by its own ids.
"""

from __future__ import annotations

import hashlib

import numpy as np

from astrobench.datasets.schema import SurveyData

DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


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
    u = _unit_interval(_group_keys(data, group_by_healpix_nside), salt)
    edges = np.cumsum([0.0, *fractions.values()])
    edges[-1] = 1.0 + 1e-12
    return {name: np.flatnonzero((u >= lo) & (u < hi)) for name, lo, hi in zip(fractions, edges[:-1], edges[1:])}

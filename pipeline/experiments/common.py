"""Shared pieces of the experiments: seeded generators, epoch ranges, angle arithmetic.

Why one module: every experiment must seed, draw epochs and measure angles the same way, so
that two experiments never disagree on what "an epoch" or "an angular error" is.
"""
from __future__ import annotations

import zlib

import numpy as np

J2000 = 2451545.0                 # first part of every two-part Julian date
EPOCH_SPAN_DAYS = 36525.0         # JD 2451545 .. 2488070 (2000-01-01 .. 2100-01-01)
DE421_END_JD = 2471184.5          # last epoch covered by DE421 (2053-10-09)
EPHEMERIS_SPAN_DAYS = DE421_END_JD - 1.0 - J2000   # Sun/Moon epochs: one day clear of the end
DELTA_T_RANGE_S = (64.0, 110.0)   # TT-UT1 drawn in this range (2000..2100 is plausible in it)

RAD2MAS = 180.0 / np.pi * 3600.0 * 1000.0
RAD2ARCSEC = 180.0 / np.pi * 3600.0
TWO_PI = 2.0 * np.pi


def rng_for(name: str, seed: int) -> np.random.Generator:
    """A generator for (experiment, seed): the name's CRC is mixed in so experiments differ."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def epoch_offsets(rng: np.random.Generator, n: int, span: float = EPOCH_SPAN_DAYS) -> np.ndarray:
    """Second parts of two-part JDs, uniform in [0, span) days after J2000."""
    return rng.uniform(0.0, span, n)


def unit_vectors(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directions uniform on the sphere (normalised Gaussian triples)."""
    v = rng.standard_normal((n, 3))
    v /= np.linalg.norm(v, axis=1)[:, None]
    return v[:, 0].copy(), v[:, 1].copy(), v[:, 2].copy()


def ra_dec(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """RA in [0, 2pi), Dec in [-pi/2, pi/2] uniform on the sphere (radians)."""
    ra = rng.uniform(0.0, TWO_PI, n)
    dec = np.arcsin(rng.uniform(-1.0, 1.0, n))
    return ra, dec


def sph_to_vec(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """(n,) longitude/latitude in radians -> (n, 3) unit vectors."""
    cl = np.cos(lat)
    return np.stack([cl * np.cos(lon), cl * np.sin(lon), np.sin(lat)], axis=-1)


def vector_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (rad) between rows of a and b, via atan2(|a x b|, a.b): exact for tiny angles,
    independent of the vectors' lengths. NaN rows stay NaN."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    cross = np.linalg.norm(np.cross(a, b), axis=1)
    dot = np.einsum("ij,ij->i", a, b)
    return np.arctan2(cross, dot)


def sph_angle_mas(name: str, reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Per-case angle (mas) between two (n, 2) longitude/latitude outputs (rad). Also right for
    azimuths measured either way round: mirroring both directions keeps their angle."""
    ref = check_columns(name, 2, reference)
    cand = check_columns(name, 2, candidate)
    return vector_angle(sph_to_vec(ref[:, 0], ref[:, 1]),
                        sph_to_vec(cand[:, 0], cand[:, 1])) * RAD2MAS


def wrapped_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| for angles in radians, folded into [0, pi]."""
    d = np.remainder(np.asarray(a, dtype=float) - np.asarray(b, dtype=float) + np.pi, TWO_PI) - np.pi
    return np.abs(d)


def check_columns(name: str, expected: int, arr: np.ndarray) -> np.ndarray:
    """Outputs must be (n, k) float; a wrong shape is a bug in the adapter, said loudly."""
    arr = np.asarray(arr, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != expected:
        raise ValueError(f"{name}: outputs must have shape (n, {expected}), got {arr.shape}")
    return arr

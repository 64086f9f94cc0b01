"""Vectorised Newton iteration for Kepler's equation: the reference for kepler_solver.

Start E0 = M + 0.85 e sign(sin M) (Danby 1987), which converges for every 0 <= e < 1; iterate
until every |dE| <= 4 ulp-ish (1e-15 rad) or 60 iterations.
"""
from __future__ import annotations

import numpy as np

from pipeline.adapters.common import DispatchAdapter
from pipeline.experiments.base import Inputs

MAX_ITER = 60
TOL = 1e-15


def solve_kepler(m: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Eccentric anomaly E (rad) for mean anomaly m (rad, any range) and 0 <= e < 1."""
    m = np.remainder(np.asarray(m, dtype=float) + np.pi, 2 * np.pi) - np.pi
    e = np.asarray(e, dtype=float)
    big = m + 0.85 * e * np.sign(np.sin(m))
    ecc_anom = np.where(e > 0.0, big, m)
    for _ in range(MAX_ITER):
        f = ecc_anom - e * np.sin(ecc_anom) - m
        step = f / (1.0 - e * np.cos(ecc_anom))
        ecc_anom = ecc_anom - step
        if np.all(np.abs(step) <= TOL):
            break
    return ecc_anom


def true_anomaly(ecc_anom: np.ndarray, e: np.ndarray) -> np.ndarray:
    """nu from E, quadrant-safe: 2 atan2(sqrt(1+e) sin(E/2), sqrt(1-e) cos(E/2))."""
    return 2.0 * np.arctan2(np.sqrt(1.0 + e) * np.sin(ecc_anom / 2.0),
                            np.sqrt(1.0 - e) * np.cos(ecc_anom / 2.0))


class NumpyNewtonAdapter(DispatchAdapter):
    name = "numpy_newton"
    distribution = "numpy"
    models = {"kepler_solver": "vectorised Newton, Danby start, |dE| <= 1e-15"}

    def _kepler_solver(self, d: Inputs) -> np.ndarray:
        return true_anomaly(solve_kepler(d["M"], d["e"]), d["e"])[:, None]

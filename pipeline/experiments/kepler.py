"""Kepler's equation M = E - e sin E, scored on the true anomaly.

ERFA has no Kepler solver, so the reference is a vectorised numpy Newton iteration run to
convergence (adapter "numpy_newton"). The true anomaly is the common output because every
library reaches it (skyfield gives E, siderust gives a position in the orbital plane).
"""
from __future__ import annotations

import numpy as np

from pipeline.experiments.base import TIMING_BASIS, Experiment, Inputs
from pipeline.experiments.common import check_columns, rng_for, wrapped_diff

E_MAX = 0.95   # eccentricities drawn in [0, E_MAX): elliptic, including very eccentric orbits


class KeplerSolver(Experiment):
    """Inputs M (mean anomaly, rad, [-pi, pi)), e (eccentricity); output nu (true anomaly, rad)."""
    name = "kepler_solver"
    title = "Kepler's equation for elliptic orbits, true anomaly from (M, e)"
    reference_adapter = "numpy_newton"
    error_unit = "rad"
    output_columns = ("nu",)
    perf_contract = ("for each case: solve M = E - e sin E to the library's full precision "
                     "and return the true anomaly nu (rad); returns (n, 1) nu") + TIMING_BASIS
    tolerance = {"numpy_newton": 0.0, "skyfield": 1e-12, "siderust": 1e-12}

    def generate_inputs(self, n: int, seed: int) -> Inputs:
        rng = rng_for(self.name, seed)
        return {"M": rng.uniform(-np.pi, np.pi, n), "e": rng.uniform(0.0, E_MAX, n)}

    def error(self, reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        ref = check_columns(self.name, 1, reference)
        cand = check_columns(self.name, 1, candidate)
        return wrapped_diff(ref[:, 0], cand[:, 0])

"""Geocentric Sun and Moon: the truth is DE421 (JPL), evaluated with jplephem.

Outputs are the geometric geocentric position (km) in ICRS axes at the TDB epoch: no light
time, no aberration. A library that only gives apparent places is scored as it is (its error
then contains aberration/light time), which the model text in its adapter says.
"""
from __future__ import annotations

import numpy as np

from pipeline.experiments.base import TIMING_BASIS, Experiment, Inputs
from pipeline.experiments.common import (EPHEMERIS_SPAN_DAYS, J2000, RAD2ARCSEC, RAD2MAS,
                                         check_columns, epoch_offsets, rng_for, vector_angle)


class _Geocentric(Experiment):
    """Inputs tdb1, tdb2 (two-part TDB JD, inside DE421); outputs x, y, z (km, ICRS, geometric)."""
    reference_adapter = "de421"
    output_columns = ("x", "y", "z")
    _scale: float = RAD2MAS

    def generate_inputs(self, n: int, seed: int) -> Inputs:
        rng = rng_for(self.name, seed)
        return {"tdb1": np.full(n, J2000), "tdb2": epoch_offsets(rng, n, EPHEMERIS_SPAN_DAYS)}

    def error(self, reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        """Geocentric direction error (the distance is not scored: not every library gives it)."""
        ref = check_columns(self.name, 3, reference)
        cand = check_columns(self.name, 3, candidate)
        return vector_angle(ref, cand) * self._scale


class SolarPosition(_Geocentric):
    name = "solar_position"
    title = "Geocentric geometric Sun, ICRS axes, vs DE421"
    error_unit = "mas"
    _scale = RAD2MAS
    perf_contract = ("for each case: the Sun's geocentric position at the TDB epoch in ICRS "
                     "axes (km; direction is scored), including any frame rotation the "
                     "library needs to get there; returns (n, 3) x, y, z") + TIMING_BASIS
    tolerance = {"de421": 0.0, "skyfield": 1.0, "astropy": 50.0, "erfa": 50.0, "palpy": 100.0,
                 "siderust": 300.0, "ephem": 2000.0}


class LunarPosition(_Geocentric):
    name = "lunar_position"
    title = "Geocentric geometric Moon, ICRS axes, vs DE421"
    error_unit = "arcsec"
    _scale = RAD2ARCSEC
    perf_contract = ("for each case: the Moon's geocentric position at the TDB epoch in ICRS "
                     "axes (km; direction is scored), including any frame rotation the "
                     "library needs to get there; returns (n, 3) x, y, z") + TIMING_BASIS
    tolerance = {"de421": 0.0, "skyfield": 0.001, "siderust": 3.0, "erfa": 30.0,
                 "astropy": 30.0, "palpy": 30.0, "ephem": 5.0}

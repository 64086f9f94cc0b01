"""Earth rotation: sidereal time / Earth rotation angle, and RA/Dec of date -> Az/Alt.

UT1 and TT are both inputs (TT = UT1 + a seeded Delta-T) so that no library's own Delta-T
model enters the reference; libraries that insist on their own (skyfield, astropy) show the
resulting difference in their error, which is what a user of them would get.
"""
from __future__ import annotations

import numpy as np

from pipeline.experiments.base import TIMING_BASIS, Experiment, Inputs
from pipeline.experiments.common import (DELTA_T_RANGE_S, J2000, RAD2MAS, TWO_PI, check_columns,
                                         epoch_offsets, rng_for, sph_angle_mas, wrapped_diff)


def _ut1_tt(rng: np.random.Generator, n: int) -> Inputs:
    ut1_2 = epoch_offsets(rng, n)
    delta_t = rng.uniform(*DELTA_T_RANGE_S, n)
    return {"ut1_1": np.full(n, J2000), "ut1_2": ut1_2,
            "tt1": np.full(n, J2000), "tt2": ut1_2 + delta_t / 86400.0, "delta_t": delta_t}


class GmstEra(Experiment):
    """Inputs ut1_1, ut1_2, tt1, tt2, delta_t (s); outputs gmst, era (rad).

    Error: the larger of the two wrapped differences, in mas — one number per case, so an
    adapter that is exact in ERA but off in GMST is still reported at its GMST error."""
    name = "gmst_era"
    title = "Greenwich mean sidereal time (IAU 2006, gmst06) and Earth rotation angle (era00)"
    reference_adapter = "erfa"
    error_unit = "mas"
    output_columns = ("gmst", "era")
    perf_contract = ("for each case: from UT1 (and TT, or the library's own TT) compute BOTH "
                     "GMST (IAU 2006) and the Earth rotation angle, radians in [0, 2pi); "
                     "returns (n, 2) gmst, era. A library without ERA does not take part.") + TIMING_BASIS
    tolerance = {"erfa": 0.0, "novas": 1e-3, "astropy": 0.2, "skyfield": 1.0}

    def generate_inputs(self, n: int, seed: int) -> Inputs:
        return _ut1_tt(rng_for(self.name, seed), n)

    def error(self, reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        ref = check_columns(self.name, 2, reference)
        cand = check_columns(self.name, 2, candidate)
        d = np.maximum(wrapped_diff(ref[:, 0], cand[:, 0]), wrapped_diff(ref[:, 1], cand[:, 1]))
        d[np.isnan(cand).any(axis=1)] = np.nan
        return d * RAD2MAS


class EquHorizontal(Experiment):
    """Inputs ut1_1, ut1_2, tt1, tt2, delta_t, ra, dec (true equator/equinox of date, rad),
    lon (east +), lat (geodetic, rad); outputs az (north through east), alt (rad), geometric
    (no refraction, no polar motion, no diurnal aberration)."""
    name = "equ_horizontal"
    title = "Apparent RA/Dec of date -> azimuth/altitude for an observer (gst06a + hd2ae)"
    reference_adapter = "erfa"
    error_unit = "mas"
    output_columns = ("az", "alt")
    perf_contract = ("for each case: apparent sidereal time (IAU 2006/2000A) at the UT1/TT "
                     "epoch, local hour angle for the observer's longitude, then azimuth and "
                     "altitude (rad) for the observer's latitude; no refraction; returns "
                     "(n, 2) az, alt") + TIMING_BASIS
    tolerance = {"erfa": 0.0, "skyfield": 0.5, "palpy": 0.5, "novas": 0.5,
                 "astropy": 2000.0, "astropy_like": 0.5, "ephem": 60000.0}

    def generate_inputs(self, n: int, seed: int) -> Inputs:
        rng = rng_for(self.name, seed)
        d = _ut1_tt(rng, n)
        d["ra"] = rng.uniform(0.0, TWO_PI, n)
        d["dec"] = np.arcsin(rng.uniform(-1.0, 1.0, n))
        d["lon"] = rng.uniform(-np.pi, np.pi, n)
        d["lat"] = np.arcsin(rng.uniform(-0.95, 0.95, n))  # keep clear of the poles (|lat| < 72 deg)
        return d

    def error(self, reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        return sph_angle_mas(self.name, reference, candidate)

"""Celestial frame rotations: bias-precession-nutation, precession, equator -> ecliptic.

All four take ICRS/GCRS directions and a TT epoch (except the fixed J2000 ecliptic) and return
a direction in another frame; the error is the angle between reference and candidate
directions, so a library is never penalised for returning a vector rather than angles.
"""
from __future__ import annotations

import numpy as np

from pipeline.experiments.base import TIMING_BASIS, Experiment, Inputs
from pipeline.experiments.common import (J2000, RAD2MAS, check_columns, epoch_offsets, ra_dec,
                                         rng_for, sph_angle_mas, unit_vectors, vector_angle)


class _VectorRotation(Experiment):
    """Inputs tt1, tt2 (two-part TT JD), x, y, z (unit ICRS direction); outputs x, y, z."""
    error_unit = "mas"
    output_columns = ("x", "y", "z")

    def generate_inputs(self, n: int, seed: int) -> Inputs:
        rng = rng_for(self.name, seed)
        tt2 = epoch_offsets(rng, n)
        x, y, z = unit_vectors(rng, n)
        return {"tt1": np.full(n, J2000), "tt2": tt2, "x": x, "y": y, "z": z}

    def error(self, reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        ref = check_columns(self.name, 3, reference)
        cand = check_columns(self.name, 3, candidate)
        return vector_angle(ref, cand) * RAD2MAS


class FrameRotationBPN(_VectorRotation):
    name = "frame_rotation_bpn"
    title = "ICRS direction -> true equator and equinox of date (IAU 2006/2000A bias-precession-nutation)"
    reference_adapter = "erfa"
    perf_contract = ("for each case: from the TT epoch build the full bias-precession-nutation "
                     "(pnm06a-equivalent) and rotate the unit ICRS vector into the true equator "
                     "and equinox of date; returns (n, 3) x, y, z") + TIMING_BASIS
    tolerance = {"erfa": 0.0, "astropy": 1e-6, "palpy": 1e-6, "siderust": 1e-6,
                 "skyfield": 0.1, "novas": 0.1}


class Precession(_VectorRotation):
    name = "precession"
    title = "ICRS direction -> mean equator and equinox of date (IAU 2006 bias-precession, bp06 rbp)"
    reference_adapter = "erfa"
    perf_contract = ("for each case: from the TT epoch build frame bias + precession (no "
                     "nutation) and rotate the unit ICRS vector to the mean equator and "
                     "equinox of date; returns (n, 3) x, y, z") + TIMING_BASIS
    tolerance = {"erfa": 0.0, "astropy": 1e-6, "siderust": 1e-6, "novas": 0.01,
                 "palpy": 1e-6, "ephem": 1000.0}


class EquEcl(Experiment):
    """Inputs tt1, tt2, ra, dec (ICRS, rad); outputs elon, elat (mean ecliptic and equinox of date, rad)."""
    name = "equ_ecl"
    title = "ICRS RA/Dec -> ecliptic longitude/latitude, mean ecliptic and equinox of date (eqec06)"
    reference_adapter = "erfa"
    error_unit = "mas"
    output_columns = ("elon", "elat")
    perf_contract = ("for each case: ICRS RA/Dec (rad) and TT epoch -> ecliptic longitude and "
                     "latitude (rad) on the IAU 2006 mean ecliptic and equinox of date; "
                     "returns (n, 2) elon, elat") + TIMING_BASIS
    tolerance = {"erfa": 0.0, "astropy": 1e-6, "palpy": 1e-6, "novas": 0.01, "ephem": 1000.0}

    def generate_inputs(self, n: int, seed: int) -> Inputs:
        rng = rng_for(self.name, seed)
        tt2 = epoch_offsets(rng, n)
        ra, dec = ra_dec(rng, n)
        return {"tt1": np.full(n, J2000), "tt2": tt2, "ra": ra, "dec": dec}

    def error(self, reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        return sph_angle_mas(self.name, reference, candidate)


class IcrsEclJ2000(Experiment):
    """Inputs ra, dec (ICRS, rad); outputs elon, elat on the IAU 2006 mean ecliptic of J2000."""
    name = "icrs_ecl_j2000"
    title = "ICRS RA/Dec -> ecliptic coordinates, IAU 2006 mean ecliptic and equinox of J2000 (ecm06 at J2000)"
    reference_adapter = "erfa"
    error_unit = "mas"
    output_columns = ("elon", "elat")
    perf_contract = ("for each case: ICRS RA/Dec (rad) -> longitude and latitude (rad) on the "
                     "mean ecliptic and equinox of J2000.0; returns (n, 2) elon, elat") + TIMING_BASIS
    tolerance = {"erfa": 0.0, "siderust": 1e-6, "astropy": 1e-6, "palpy": 1e-6, "novas": 0.01}

    def generate_inputs(self, n: int, seed: int) -> Inputs:
        rng = rng_for(self.name, seed)
        ra, dec = ra_dec(rng, n)
        return {"ra": ra, "dec": dec}

    def error(self, reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        return sph_angle_mas(self.name, reference, candidate)

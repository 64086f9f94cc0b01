"""pyerfa: the reference for the frame and Earth-rotation experiments, a candidate for Sun/Moon.

Everything is vectorised over the case arrays (ERFA's ufuncs), which is how a pyerfa user
calls it.
"""
from __future__ import annotations

import numpy as np

from pipeline.adapters.common import AU_KM, DispatchAdapter, rotate, vec_to_lonlat
from pipeline.experiments.base import Inputs


class ErfaAdapter(DispatchAdapter):
    name = "erfa"
    distribution = "pyerfa"
    models = {
        "frame_rotation_bpn": "pnm06a (IAU 2006/2000A) matrix x vector",
        "gmst_era": "gmst06 (IAU 2006) + era00",
        "equ_ecl": "eqec06 (IAU 2006 mean ecliptic of date)",
        "equ_horizontal": "gst06a + hd2ae",
        "solar_position": "epv00 (Earth heliocentric, negated), BCRS axes",
        "lunar_position": "moon98 (Meeus/ELP2000-82 truncated), GCRS",
        "precession": "bp06 rbp (frame bias + IAU 2006 precession) x vector",
        "icrs_ecl_j2000": "ecm06(2451545, 0) x vector",
    }

    def _frame_rotation_bpn(self, d: Inputs) -> np.ndarray:
        import erfa
        return rotate(erfa.pnm06a(d["tt1"], d["tt2"]), d["x"], d["y"], d["z"])

    def _precession(self, d: Inputs) -> np.ndarray:
        import erfa
        return rotate(erfa.bp06(d["tt1"], d["tt2"])[2], d["x"], d["y"], d["z"])

    def _gmst_era(self, d: Inputs) -> np.ndarray:
        import erfa
        gmst = erfa.gmst06(d["ut1_1"], d["ut1_2"], d["tt1"], d["tt2"])
        era = erfa.era00(d["ut1_1"], d["ut1_2"])
        return np.stack([gmst, era], axis=-1)

    def _equ_ecl(self, d: Inputs) -> np.ndarray:
        import erfa
        dl, db = erfa.eqec06(d["tt1"], d["tt2"], d["ra"], d["dec"])
        return np.stack([dl, db], axis=-1)

    def _equ_horizontal(self, d: Inputs) -> np.ndarray:
        import erfa
        gst = erfa.gst06a(d["ut1_1"], d["ut1_2"], d["tt1"], d["tt2"])
        az, alt = erfa.hd2ae(gst + d["lon"] - d["ra"], d["dec"], d["lat"])
        return np.stack([az, alt], axis=-1)

    def _icrs_ecl_j2000(self, d: Inputs) -> np.ndarray:
        import erfa
        rm = erfa.ecm06(2451545.0, 0.0)
        return vec_to_lonlat(erfa.s2c(d["ra"], d["dec"]) @ rm.T)

    def _solar_position(self, d: Inputs) -> np.ndarray:
        import erfa
        pvh, _pvb = erfa.epv00(d["tdb1"], d["tdb2"])
        return -pvh["p"] * AU_KM

    def _lunar_position(self, d: Inputs) -> np.ndarray:
        import erfa
        return erfa.moon98(d["tdb1"], d["tdb2"])["p"] * AU_KM

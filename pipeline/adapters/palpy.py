"""palpy (Starlink PAL over ERFA): vector forms where PAL has them, per-case loops otherwise.

Dates are MJD (JD - 2400000.5); with our two-part JDs the MJD is 51544.5 + second part.
"""
from __future__ import annotations

import numpy as np

from pipeline.adapters.base import AdapterUnavailable
from pipeline.adapters.common import AU_KM, DispatchAdapter, loop_rows, n_of
from pipeline.adapters.de421 import ephemeris_domain
from pipeline.experiments.base import Inputs

MJD0 = 2400000.5


def _mjd(d: Inputs, a: str, b: str) -> np.ndarray:
    return (d[a] - MJD0) + d[b]


def _lists(*arrays: np.ndarray) -> list[list[float]]:
    """Python lists for per-case loops: indexing a list costs far less than a numpy array."""
    return [a.tolist() for a in arrays]


class PalpyAdapter(DispatchAdapter):
    name = "palpy"
    distribution = "palpy"
    models = {
        "frame_rotation_bpn": "prenut(2000.0, mjd) (IAU 2006/2000A), per case",
        "equ_ecl": "eqecl(ra, dec, mjd), per case",
        "equ_horizontal": "gmstaVector + eqeqxVector (gast), de2h per case (scalar latitude)",
        "solar_position": "evp(mjd, 2000.0) heliocentric Earth negated; mean equator and "
                          "equinox of J2000 axes (no frame bias), per case",
        "lunar_position": "dmoonVector (Meeus, mean of date) then prec(2000, epoch) transposed, per case",
        "precession": "prec(2000.0, epj(mjd)) (IAU 2006, bias included: matches pmat06) x vector, per case",
        "icrs_ecl_j2000": "eqecl(ra, dec, 51544.5), per case",
    }

    def check_available(self) -> None:
        try:
            import palpy  # noqa: F401
        except ImportError as exc:
            raise AdapterUnavailable(f"palpy is not installed: {exc}")

    def domain(self, experiment: str, inputs: Inputs) -> np.ndarray:
        if experiment in ("solar_position", "lunar_position"):
            return ephemeris_domain(inputs)   # the truth stops there, not palpy
        return super().domain(experiment, inputs)

    def _frame_rotation_bpn(self, d: Inputs) -> np.ndarray:
        import palpy
        mjd, x, y, z = _lists(_mjd(d, "tt1", "tt2"), d["x"], d["y"], d["z"])
        prenut = palpy.prenut
        return loop_rows(n_of(d), 3, lambda i: prenut(2000.0, mjd[i]) @ (x[i], y[i], z[i]))

    def _precession(self, d: Inputs) -> np.ndarray:
        import palpy
        mjd, x, y, z = _lists(_mjd(d, "tt1", "tt2"), d["x"], d["y"], d["z"])
        prec, epj = palpy.prec, palpy.epj
        return loop_rows(n_of(d), 3, lambda i: prec(2000.0, epj(mjd[i])) @ (x[i], y[i], z[i]))

    def _equ_ecl(self, d: Inputs) -> np.ndarray:
        import palpy
        mjd, ra, dec = _lists(_mjd(d, "tt1", "tt2"), d["ra"], d["dec"])
        eqecl = palpy.eqecl
        return loop_rows(n_of(d), 2, lambda i: eqecl(ra[i], dec[i], mjd[i]))

    def _icrs_ecl_j2000(self, d: Inputs) -> np.ndarray:
        import palpy
        ra, dec = _lists(d["ra"], d["dec"])
        eqecl = palpy.eqecl
        return loop_rows(n_of(d), 2, lambda i: eqecl(ra[i], dec[i], 51544.5))

    def _equ_horizontal(self, d: Inputs) -> np.ndarray:
        import palpy
        mjd_ut1 = _mjd(d, "ut1_1", "ut1_2")
        day = np.floor(mjd_ut1)
        gast = palpy.gmstaVector(day, mjd_ut1 - day) + palpy.eqeqxVector(_mjd(d, "tt1", "tt2"))
        ha, dec, lat = _lists(gast + d["lon"] - d["ra"], d["dec"], d["lat"])
        de2h = palpy.de2h
        return loop_rows(n_of(d), 2, lambda i: de2h(ha[i], dec[i], lat[i]))

    def _solar_position(self, d: Inputs) -> np.ndarray:
        import palpy
        mjd = _mjd(d, "tdb1", "tdb2").tolist()
        evp = palpy.evp
        return loop_rows(n_of(d), 3, lambda i: evp(mjd[i], 2000.0)[3] * -AU_KM)

    def _lunar_position(self, d: Inputs) -> np.ndarray:
        import palpy
        mjd = _mjd(d, "tdb1", "tdb2")
        x, y, z, _vx, _vy, _vz = palpy.dmoonVector(mjd)
        epj, x, y, z = _lists(palpy.epjVector(mjd), x * AU_KM, y * AU_KM, z * AU_KM)
        prec = palpy.prec
        return loop_rows(n_of(d), 3, lambda i: prec(2000.0, epj[i]).T @ (x[i], y[i], z[i]))

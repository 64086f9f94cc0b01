"""skyfield with its builtin timescale and the de421.bsp shipped by skyfield-data (offline).

Frame and sidereal work is vectorised over Time arrays, in chunks of CHUNK cases because the
vectorised IAU 2000A nutation needs ~22 kB per case. Sidereal inputs are built from UT1
(ts.ut1_jd): skyfield then derives TT with its own Delta-T, which is what a user gets.
"""
from __future__ import annotations

import math
import warnings
from typing import Iterator

import numpy as np

from pipeline.adapters.base import AdapterUnavailable
from pipeline.adapters.common import DispatchAdapter, loop_rows, n_of
from pipeline.adapters.de421 import de421_path, ephemeris_domain
from pipeline.experiments.base import Inputs

CHUNK = 10_000
HOUR = np.pi / 12.0


def _chunks(n: int) -> Iterator[slice]:
    for lo in range(0, n, CHUNK):
        yield slice(lo, min(n, lo + CHUNK))


class SkyfieldAdapter(DispatchAdapter):
    name = "skyfield"
    distribution = "skyfield"
    models = {
        "frame_rotation_bpn": "Time.M (IAU 2006 precession + IAU 2000A nutation) x vector",
        "gmst_era": "ts.ut1_jd(jd).gmst + earthlib.earth_rotation_angle (skyfield's own TT)",
        "equ_horizontal": "ts.ut1_jd(jd).gast + hour angle; Az/Alt by the adapter's own trig "
                          "(skyfield has no Az/Alt for a bare RA/Dec of date)",
        "solar_position": "DE421 via skyfield: (sun - earth).at(ts.tdb_jd), geometric",
        "lunar_position": "DE421 via skyfield: (moon - earth).at(ts.tdb_jd), geometric",
        "kepler_solver": "keplerlib.eccentric_anomaly (scalar, semi-private) then nu from E",
    }

    def __init__(self) -> None:
        self._ts = None
        self._eph = None

    def check_available(self) -> None:
        try:
            import skyfield.api  # noqa: F401
        except ImportError as exc:
            raise AdapterUnavailable(f"skyfield is not installed: {exc}")

    def domain(self, experiment: str, inputs: Inputs) -> np.ndarray:
        if experiment in ("solar_position", "lunar_position"):
            return ephemeris_domain(inputs)
        return super().domain(experiment, inputs)

    def prepare(self, experiment: str, d: Inputs) -> object:
        from skyfield.api import load, load_file
        if self._ts is None:
            self._ts = load.timescale(builtin=True)
        if experiment in ("solar_position", "lunar_position") and self._eph is None:
            path = de421_path()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._eph = load_file(path)
        return d

    def _frame_rotation_bpn(self, d: Inputs) -> np.ndarray:
        out = np.empty((n_of(d), 3))
        v = np.stack([d["x"], d["y"], d["z"]], axis=-1)
        for s in _chunks(len(out)):
            t = self._ts.tt_jd(d["tt1"][s], d["tt2"][s])
            out[s] = np.einsum("ijn,nj->ni", t.M, v[s])
        return out

    def _gmst_era(self, d: Inputs) -> np.ndarray:
        from skyfield.earthlib import earth_rotation_angle
        out = np.empty((n_of(d), 2))
        for s in _chunks(len(out)):
            t = self._ts.ut1_jd(d["ut1_1"][s] + d["ut1_2"][s])
            out[s, 0] = np.remainder(t.gmst * HOUR, 2 * np.pi)
            out[s, 1] = np.remainder(earth_rotation_angle(d["ut1_1"][s], d["ut1_2"][s]), 1.0) * 2 * np.pi
        return out

    def _equ_horizontal(self, d: Inputs) -> np.ndarray:
        out = np.empty((n_of(d), 2))
        for s in _chunks(len(out)):
            t = self._ts.ut1_jd(d["ut1_1"][s] + d["ut1_2"][s])
            ha = t.gast * HOUR + d["lon"][s] - d["ra"][s]
            dec, lat = d["dec"][s], d["lat"][s]
            # topocentric unit vector: x north, y east, z up
            x = -np.cos(ha) * np.cos(dec) * np.sin(lat) + np.sin(dec) * np.cos(lat)
            y = -np.sin(ha) * np.cos(dec)
            z = np.cos(ha) * np.cos(dec) * np.cos(lat) + np.sin(dec) * np.sin(lat)
            out[s, 0] = np.remainder(np.arctan2(y, x), 2 * np.pi)
            out[s, 1] = np.arctan2(z, np.hypot(x, y))
        return out

    def _body(self, target: str, d: Inputs) -> np.ndarray:
        out = np.empty((n_of(d), 3))
        vec = self._eph[target] - self._eph["earth"]
        for s in _chunks(len(out)):
            t = self._ts.tdb_jd(d["tdb1"][s], d["tdb2"][s])
            out[s] = vec.at(t).position.km.T
        return out

    def _solar_position(self, d: Inputs) -> np.ndarray:
        return self._body("sun", d)

    def _lunar_position(self, d: Inputs) -> np.ndarray:
        return self._body("moon", d)

    def _kepler_solver(self, d: Inputs) -> np.ndarray:
        from skyfield.keplerlib import eccentric_anomaly
        m, e = d["M"].tolist(), d["e"].tolist()
        atan2, sqrt, sin, cos = math.atan2, math.sqrt, math.sin, math.cos

        def row(i: int) -> tuple[float]:
            ecc = eccentric_anomaly(e[i], m[i])
            return (2.0 * atan2(sqrt(1.0 + e[i]) * sin(ecc / 2.0),
                                sqrt(1.0 - e[i]) * cos(ecc / 2.0)),)
        return loop_rows(n_of(d), 1, row)

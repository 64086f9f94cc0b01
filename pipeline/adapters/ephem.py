"""PyEphem (libastro): per-case object calls, dates as Dublin JD (JD - 2415020) in UT.

Sun/Moon: ephem wants UT; the timed call turns the TDB epoch into UT with ephem's own Delta-T
(TDB ~ TT, < 2 ms), so the body is computed at the same physical instant as the truth. Its
a_ra/a_dec are astrometric (geocentric light time applied) in the J2000 mean frame; the
distance is earth_distance. For the Moon that light time (~1.3 s, 0.70" of lunar motion) is
most of its difference from DE421's geometric position: a convention, not theory error.
"""
from __future__ import annotations

import math

import numpy as np

from pipeline.adapters.base import AdapterUnavailable
from pipeline.adapters.common import AU_KM, DispatchAdapter, loop_rows, n_of
from pipeline.adapters.de421 import ephemeris_domain
from pipeline.experiments.base import Inputs
from pipeline.experiments.common import sph_to_vec

DUBLIN_JD = 2415020.0


def _dublin(d: Inputs, a: str, b: str) -> np.ndarray:
    return (d[a] - DUBLIN_JD) + d[b]


class EphemAdapter(DispatchAdapter):
    name = "ephem"
    distribution = "ephem"
    models = {
        "equ_ecl": "Ecliptic(Equatorial(ra, dec, epoch=J2000), epoch=date) (libastro "
                   "precession/obliquity, not IAU 2006)",
        "equ_horizontal": "FixedBody(_epoch=date) for an Observer (pressure 0): ephem takes "
                          "the input as mean-of-date and adds nutation and annual aberration",
        "solar_position": "Sun().compute(UT) a_ra/a_dec (astrometric, J2000) x earth_distance",
        "lunar_position": "Moon().compute(UT) a_ra/a_dec (astrometric, J2000) x earth_distance; "
                          "differs mainly by geocentric light time (0.70\", a convention)",
        "precession": "Equatorial(Equatorial(ra, dec, epoch=J2000), epoch=date) (libastro, "
                      "no frame bias)",
    }

    def check_available(self) -> None:
        try:
            import ephem  # noqa: F401
        except ImportError as exc:
            raise AdapterUnavailable(f"ephem is not installed: {exc}")

    def domain(self, experiment: str, inputs: Inputs) -> np.ndarray:
        if experiment in ("solar_position", "lunar_position"):
            return ephemeris_domain(inputs)
        return super().domain(experiment, inputs)

    @staticmethod
    def _ut_of_tdb(tdb: list[float]) -> list[float]:
        """TDB (Dublin JD) -> UT with ephem's own Delta-T, two passes (the second at UT)."""
        import ephem
        delta_t = ephem.delta_t
        first = [t - delta_t(t) / 86400.0 for t in tdb]
        return [t - delta_t(u) / 86400.0 for t, u in zip(tdb, first)]

    def _equ_ecl(self, d: Inputs) -> np.ndarray:
        import ephem
        ra, dec, date = d["ra"].tolist(), d["dec"].tolist(), _dublin(d, "tt1", "tt2").tolist()

        def row(i: int) -> tuple[float, float]:
            ecl = ephem.Ecliptic(ephem.Equatorial(ra[i], dec[i], epoch=ephem.J2000),
                                 epoch=date[i])
            return float(ecl.lon), float(ecl.lat)
        return loop_rows(n_of(d), 2, row)

    def _precession(self, d: Inputs) -> np.ndarray:
        import ephem
        ra = np.arctan2(d["y"], d["x"]).tolist()
        dec = np.arctan2(d["z"], np.hypot(d["x"], d["y"])).tolist()
        date = _dublin(d, "tt1", "tt2").tolist()

        def row(i: int) -> tuple[float, float]:
            eq = ephem.Equatorial(ephem.Equatorial(ra[i], dec[i], epoch=ephem.J2000),
                                  epoch=date[i])
            return float(eq.ra), float(eq.dec)
        lonlat = loop_rows(n_of(d), 2, row)
        return sph_to_vec(lonlat[:, 0], lonlat[:, 1])

    def _equ_horizontal(self, d: Inputs) -> np.ndarray:
        import ephem
        ut = _dublin(d, "ut1_1", "ut1_2").tolist()
        ra, dec = d["ra"].tolist(), d["dec"].tolist()
        lon, lat = d["lon"].tolist(), d["lat"].tolist()

        def row(i: int) -> tuple[float, float]:
            obs = ephem.Observer()
            obs.lon, obs.lat, obs.elevation, obs.pressure = lon[i], lat[i], 0.0, 0.0
            obs.date = ut[i]
            star = ephem.FixedBody()
            star._ra, star._dec, star._epoch = ra[i], dec[i], ut[i]
            star.compute(obs)
            return float(star.az), float(star.alt)
        return loop_rows(n_of(d), 2, row)

    def _body(self, cls_name: str, d: Inputs) -> np.ndarray:
        import ephem
        ut = self._ut_of_tdb(_dublin(d, "tdb1", "tdb2").tolist())
        body = getattr(ephem, cls_name)()
        cos, sin = math.cos, math.sin

        def row(i: int) -> tuple[float, float, float]:
            body.compute(ut[i])
            r = body.earth_distance * AU_KM
            ra, dec = float(body.a_ra), float(body.a_dec)
            return (r * cos(dec) * cos(ra), r * cos(dec) * sin(ra), r * sin(dec))
        return loop_rows(len(ut), 3, row)

    def _solar_position(self, d: dict) -> np.ndarray:
        return self._body("Sun", d)

    def _lunar_position(self, d: dict) -> np.ndarray:
        return self._body("Moon", d)

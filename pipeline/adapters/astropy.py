"""astropy through its own frames and Time (never by calling erfa directly).

Directions are geocentric (GCRS with the geocentre as observer, so no aberration enters a
GCRS->of-date transform when obstime matches). The timed call starts from the float arrays:
it builds the Time arrays and the input frame objects, transforms, and reads out the numbers
(prepare() only configures astropy). astropy is kept offline: no IERS download, no internet,
degraded accuracy ignored. Beyond its bundled IERS table astropy's polar motion is not zero
but a constant (x, y) = (35, 290) mas (measured): with diurnal aberration (AltAz is
topocentric, observer moving with Earth's rotation, up to ~320 mas) that is its whole
equ_horizontal difference from the reference's geometric hd2ae.
"""
from __future__ import annotations

import numpy as np

from pipeline.adapters.base import AdapterUnavailable
from pipeline.adapters.common import DispatchAdapter
from pipeline.experiments.base import Inputs
from pipeline.experiments.common import J2000


def configure_offline() -> None:
    """Must run before any astropy.coordinates use: never reach the network.

    Also silences the two warnings every future epoch triggers (ERFA "dubious year" for
    leap seconds past the table, astropy's "polar motion ... after IERS data"): they are the
    documented cost of offline operation (see the model text), not news, and would otherwise
    fill the job log once per call. The filters are process-wide; each (adapter, experiment)
    runs in its own process."""
    import warnings

    from astropy.utils import data, iers
    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    iers.conf.iers_degraded_accuracy = "ignore"
    data.conf.allow_internet = False
    warnings.filterwarnings("ignore", message=r".*dubious year")
    warnings.filterwarnings("ignore", message=r"Tried to get polar motions for times after")


class AstropyAdapter(DispatchAdapter):
    name = "astropy"
    distribution = "astropy"
    models = {
        "frame_rotation_bpn": "GCRS -> TETE(obstime) (IAU 2006/2000A)",
        "gmst_era": "Time(UT1, delta_ut1_utc=0).sidereal_time('mean','tio','IAU2006') + "
                    ".earth_rotation_angle('tio'); astropy's own TT from UTC=UT1",
        "equ_ecl": "GCRS -> GeocentricMeanEcliptic(equinox=obstime)",
        "equ_horizontal": "TETE -> AltAz (pressure 0); astropy adds polar motion (its bundled "
                          "IERS table, a constant (35, 290) mas beyond it) and diurnal "
                          "aberration (up to ~320 mas); TT from UTC=UT1",
        "solar_position": "get_body_barycentric('sun') - ('earth'), ephemeris='builtin' (epv00)",
        "lunar_position": "get_body_barycentric('moon') - ('earth'), ephemeris='builtin'",
        "precession": "GCRS -> PrecessedGeocentric(equinox=obstime)",
        "icrs_ecl_j2000": "GCRS(J2000) -> GeocentricMeanEcliptic(equinox=J2000)",
    }

    def check_available(self) -> None:
        try:
            configure_offline()
            import astropy.coordinates  # noqa: F401
        except ImportError as exc:
            raise AdapterUnavailable(f"astropy is not installed: {exc}")

    def prepare(self, experiment: str, d: Inputs) -> object:
        """Configuration only (offline IERS, imports): every Time and frame is built from the
        float inputs inside the timed call, as a user starting from numbers must."""
        configure_offline()
        import astropy.coordinates  # noqa: F401
        return d

    @staticmethod
    def _xyz(coord) -> np.ndarray:
        c = coord.cartesian
        return np.stack([np.asarray(c.x.value), np.asarray(c.y.value), np.asarray(c.z.value)],
                        axis=-1).astype(float)

    @staticmethod
    def _lonlat(coord) -> np.ndarray:
        return np.stack([coord.lon.rad, coord.lat.rad], axis=-1).astype(float)

    @staticmethod
    def _gcrs_xyz(d: Inputs):
        from astropy.coordinates import GCRS, CartesianRepresentation
        from astropy.time import Time
        t = Time(d["tt1"], d["tt2"], format="jd", scale="tt")
        return t, GCRS(CartesianRepresentation(d["x"], d["y"], d["z"]), obstime=t)

    @staticmethod
    def _gcrs_radec(d: Inputs, t):
        import astropy.units as u
        from astropy.coordinates import GCRS
        return GCRS(ra=d["ra"] * u.rad, dec=d["dec"] * u.rad, obstime=t)

    @staticmethod
    def _ut1(d: Inputs):
        from astropy.time import Time
        t = Time(d["ut1_1"], d["ut1_2"], format="jd", scale="ut1")
        t.delta_ut1_utc = 0.0
        return t

    def _frame_rotation_bpn(self, d: Inputs) -> np.ndarray:
        from astropy.coordinates import TETE
        t, gcrs = self._gcrs_xyz(d)
        return self._xyz(gcrs.transform_to(TETE(obstime=t)))

    def _precession(self, d: Inputs) -> np.ndarray:
        from astropy.coordinates import PrecessedGeocentric
        t, gcrs = self._gcrs_xyz(d)
        return self._xyz(gcrs.transform_to(PrecessedGeocentric(equinox=t, obstime=t)))

    def _equ_ecl(self, d: Inputs) -> np.ndarray:
        from astropy.coordinates import GeocentricMeanEcliptic
        from astropy.time import Time
        t = Time(d["tt1"], d["tt2"], format="jd", scale="tt")
        return self._lonlat(self._gcrs_radec(d, t).transform_to(
            GeocentricMeanEcliptic(equinox=t, obstime=t)))

    def _icrs_ecl_j2000(self, d: Inputs) -> np.ndarray:
        from astropy.coordinates import GeocentricMeanEcliptic
        from astropy.time import Time
        t = Time(J2000, format="jd", scale="tt")
        return self._lonlat(self._gcrs_radec(d, t).transform_to(
            GeocentricMeanEcliptic(equinox=t, obstime=t)))

    def _gmst_era(self, d: Inputs) -> np.ndarray:
        t = self._ut1(d)
        gmst = t.sidereal_time("mean", "tio", model="IAU2006").rad
        era = t.earth_rotation_angle("tio").rad
        return np.stack([gmst, era], axis=-1).astype(float)

    def _equ_horizontal(self, d: Inputs) -> np.ndarray:
        import astropy.units as u
        from astropy.coordinates import TETE, AltAz, EarthLocation
        t = self._ut1(d)
        loc = EarthLocation.from_geodetic(d["lon"] * u.rad, d["lat"] * u.rad, 0.0 * u.m)
        tete = TETE(ra=d["ra"] * u.rad, dec=d["dec"] * u.rad, obstime=t)
        aa = tete.transform_to(AltAz(obstime=t, location=loc))
        return np.stack([aa.az.rad, aa.alt.rad], axis=-1).astype(float)

    def _body(self, body: str, d: Inputs) -> np.ndarray:
        from astropy.coordinates import get_body_barycentric
        from astropy.time import Time
        t = Time(d["tdb1"], d["tdb2"], format="jd", scale="tdb")
        geo = (get_body_barycentric(body, t, ephemeris="builtin")
               - get_body_barycentric("earth", t, ephemeris="builtin"))
        return np.stack([geo.x.to_value("km"), geo.y.to_value("km"), geo.z.to_value("km")],
                        axis=-1).astype(float)

    def _solar_position(self, d: Inputs) -> np.ndarray:
        return self._body("sun", d)

    def _lunar_position(self, d: Inputs) -> np.ndarray:
        return self._body("moon", d)


class AstropyLikeAdapter(AstropyAdapter):
    """astropy computing the reference's own quantity, beside the default astropy adapter.

    The default equ_horizontal (TETE -> AltAz) differs from the geometric `gst06a + hd2ae`
    reference by polar motion and diurnal aberration, which are astropy's choices, not
    errors. This variant measures astropy doing what the reference does — apparent sidereal
    time from astropy's Time, then the HADec -> AltAz rotation (a pure rotation by the
    latitude in astropy: no polar motion, no aberration) — so both figures are shown,
    each labelled."""
    name = "astropy_like"
    distribution = "astropy"
    models = {
        "equ_horizontal": "like-for-like: Time(UT1).sidereal_time('apparent', 'greenwich', "
                          "'IAU2006A') hour angle, then HADec -> AltAz (a rotation: no polar "
                          "motion, no diurnal aberration, as gst06a + hd2ae); TT from UTC=UT1",
    }

    def _equ_horizontal(self, d: Inputs) -> np.ndarray:
        import astropy.units as u
        from astropy.coordinates import AltAz, EarthLocation, HADec
        t = self._ut1(d)
        gast = t.sidereal_time("apparent", "greenwich", model="IAU2006A").rad
        loc = EarthLocation.from_geodetic(d["lon"] * u.rad, d["lat"] * u.rad, 0.0 * u.m)
        hadec = HADec(ha=(gast + d["lon"] - d["ra"]) * u.rad, dec=d["dec"] * u.rad,
                      location=loc, obstime=t)
        aa = hadec.transform_to(AltAz(location=loc, obstime=t))
        return np.stack([aa.az.rad, aa.alt.rad], axis=-1).astype(float)

"""siderust: scalar per-case calls (its Python API takes no arrays), TT Julian dates.

Its true-of-date transform needs UT1 from a bundled monthly EOP model that ends in 2033: after
JD(TT) 2463871.5 the Rust code panics (pyo3 PanicException, a BaseException), so such epochs
are outside domain() and, should one reach compute anyway, loop_rows turns it into a NaN row.
It has no GMST/ERA, no ecliptic of date and no bare RA/Dec-of-date -> Az/Alt (its horizon
functions start from ICRS), so it does not take part in gmst_era, equ_ecl, equ_horizontal.
"""
from __future__ import annotations

import numpy as np

from pipeline.adapters.base import AdapterUnavailable
from pipeline.adapters.common import AU_KM, DispatchAdapter, loop_rows, n_of, vec_to_lonlat
from pipeline.adapters.de421 import ephemeris_domain
from pipeline.experiments.base import Inputs

UT1_HORIZON_JD = 2463871.49   # measured: to_frame('EquatorialTrueOfDate') panics after JD 2463871.5


class SiderustAdapter(DispatchAdapter):
    name = "siderust"
    distribution = "siderust"
    models = {
        "frame_rotation_bpn": "Position(ICRS, Geocentric).to_frame('EquatorialTrueOfDate', jd_tt)",
        "precession": "Position(ICRS, Geocentric).to_frame('EquatorialMeanOfDate', jd_tt)",
        "icrs_ecl_j2000": "Position(ICRS).to_frame('EclipticMeanJ2000')",
        "solar_position": "Body.Sun.barycentric_position (VSOP87E) .to_center('Geocentric') "
                          ".to_frame('ICRS')",
        "lunar_position": "Body.Moon.geocentric_position (ELP) .to_frame('ICRS')",
        "kepler_solver": "Orbit(a=1, e, i=0, node=0, peri=0, M0=M, epoch).kepler_position(epoch), "
                         "nu = atan2(y, x)",
    }

    def check_available(self) -> None:
        try:
            import siderust  # noqa: F401
        except ImportError as exc:
            raise AdapterUnavailable(f"siderust is not installed: {exc}")

    def domain(self, experiment: str, inputs: Inputs) -> np.ndarray:
        if experiment == "frame_rotation_bpn":
            return (inputs["tt1"] + inputs["tt2"]) <= UT1_HORIZON_JD
        if experiment in ("solar_position", "lunar_position"):
            return ephemeris_domain(inputs)
        return super().domain(experiment, inputs)

    def _to_frame(self, d: Inputs, frame: str) -> np.ndarray:
        from siderust import Position
        jd = (d["tt1"] + d["tt2"]).tolist()
        x, y, z = d["x"].tolist(), d["y"].tolist(), d["z"].tolist()

        def row(i: int) -> tuple[float, float, float]:
            p = Position(x[i], y[i], z[i], frame="ICRS", center="Geocentric",
                         unit="au").to_frame(frame, jd[i])
            return p.x, p.y, p.z
        return loop_rows(n_of(d), 3, row)

    def _frame_rotation_bpn(self, d: Inputs) -> np.ndarray:
        return self._to_frame(d, "EquatorialTrueOfDate")

    def _precession(self, d: Inputs) -> np.ndarray:
        return self._to_frame(d, "EquatorialMeanOfDate")

    def _icrs_ecl_j2000(self, d: Inputs) -> np.ndarray:
        from siderust import Position
        cd = np.cos(d["dec"])
        x = (cd * np.cos(d["ra"])).tolist()
        y = (cd * np.sin(d["ra"])).tolist()
        z = np.sin(d["dec"]).tolist()

        def row(i: int) -> tuple[float, float, float]:
            p = Position(x[i], y[i], z[i], frame="ICRS", center="Geocentric",
                         unit="au").to_frame("EclipticMeanJ2000", 2451545.0)
            return p.x, p.y, p.z
        return vec_to_lonlat(loop_rows(n_of(d), 3, row))

    def _solar_position(self, d: Inputs) -> np.ndarray:
        from siderust import Body
        jd = (d["tdb1"] + d["tdb2"]).tolist()

        def row(i: int) -> tuple[float, float, float]:
            p = Body.Sun.barycentric_position(jd[i]).to_center("Geocentric", jd[i]).to_frame(
                "ICRS", jd[i])
            return p.x * AU_KM, p.y * AU_KM, p.z * AU_KM
        return loop_rows(n_of(d), 3, row)

    def _lunar_position(self, d: Inputs) -> np.ndarray:
        from siderust import Body
        jd = (d["tdb1"] + d["tdb2"]).tolist()

        def row(i: int) -> tuple[float, float, float]:
            p = Body.Moon.geocentric_position(jd[i]).to_frame("ICRS", jd[i])
            return p.x, p.y, p.z
        return loop_rows(n_of(d), 3, row)

    def _kepler_solver(self, d: Inputs) -> np.ndarray:
        from siderust import Orbit
        m_deg = np.degrees(d["M"]).tolist()
        e = d["e"].tolist()

        def row(i: int) -> tuple[float]:
            p = Orbit(semi_major_axis_au=1.0, eccentricity=e[i], inclination_deg=0.0,
                      lon_ascending_node_deg=0.0, arg_perihelion_deg=0.0,
                      mean_anomaly_deg=m_deg[i], epoch_jd=2451545.0).kepler_position(2451545.0)
            return (float(np.arctan2(p.y, p.x)),)
        return loop_rows(n_of(d), 1, row)

"""DE421 through jplephem: the truth for the geocentric Sun and Moon.

The kernel is the de421.bsp shipped by skyfield-data (no download). Segments: SSB->Sun
(0,10), SSB->EMB (0,3), EMB->Earth (3,399), EMB->Moon (3,301); jplephem evaluates the
Chebyshev series vectorised over the epochs (TDB).
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from pipeline.adapters.base import AdapterUnavailable
from pipeline.adapters.common import DispatchAdapter, n_of
from pipeline.experiments.base import Inputs
from pipeline.experiments.common import DE421_END_JD

DE421_START_JD = 2414864.5   # 1899-07-29


def de421_path() -> str:
    """Path of the de421.bsp file shipped by skyfield-data; AdapterUnavailable without it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skyfield-data warns that its IERS file expired
            import skyfield_data
            data_dir = skyfield_data.get_skyfield_data_path()
    except ImportError as exc:
        raise AdapterUnavailable(f"skyfield-data (which ships de421.bsp) is not installed: {exc}")
    path = os.path.join(data_dir, "de421.bsp")
    if not os.path.isfile(path):
        raise AdapterUnavailable(f"de421.bsp not found at {path}")
    return path


def ephemeris_domain(inputs: Inputs) -> np.ndarray:
    """Cases whose TDB epoch lies inside DE421's coverage."""
    jd = inputs["tdb1"] + inputs["tdb2"]
    return (jd >= DE421_START_JD) & (jd <= DE421_END_JD)


class De421Adapter(DispatchAdapter):
    name = "de421"
    distribution = "jplephem"
    models = {
        "solar_position": "JPL DE421 (jplephem, Sun - EMB - Earth), geometric",
        "lunar_position": "JPL DE421 (jplephem, EMB->Moon - EMB->Earth), geometric",
    }

    def __init__(self) -> None:
        self._kernel = None

    def check_available(self) -> None:
        de421_path()
        try:
            import jplephem.spk  # noqa: F401
        except ImportError as exc:
            raise AdapterUnavailable(f"jplephem is not installed: {exc}")

    def domain(self, experiment: str, inputs: Inputs) -> np.ndarray:
        return ephemeris_domain(inputs)

    def prepare(self, experiment: str, inputs: Inputs) -> object:
        if self._kernel is None:
            from jplephem.spk import SPK
            self._kernel = SPK.open(de421_path())
        return inputs

    def _segment(self, a: int, b: int, d: Inputs) -> np.ndarray:
        return np.asarray(self._kernel[a, b].compute(d["tdb1"], d["tdb2"])).reshape(3, n_of(d))

    def _solar_position(self, d: Inputs) -> np.ndarray:
        p = self._segment(0, 10, d) - self._segment(0, 3, d) - self._segment(3, 399, d)
        return p.T.copy()

    def _lunar_position(self, d: Inputs) -> np.ndarray:
        p = self._segment(3, 301, d) - self._segment(3, 399, d)
        return p.T.copy()

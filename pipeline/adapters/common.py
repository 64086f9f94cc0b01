"""Helpers shared by the adapters: dispatch by experiment, per-case loops that never raise.

Why: a library that panics or fails on one case must cost that case (a NaN row), never the
run; and each adapter's compute() is one timed call that dispatches to `_<experiment>`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from pipeline.adapters.base import Adapter
from pipeline.experiments.base import Inputs

AU_KM = 149597870.700


class DispatchAdapter(Adapter):
    """compute(experiment, prepared) -> self._<experiment>(prepared), (n, k) float64."""

    def compute(self, experiment: str, prepared: object) -> np.ndarray:
        if experiment not in self.models:
            raise ValueError(f"adapter {self.name!r} does not support experiment {experiment!r}")
        return getattr(self, "_" + experiment)(prepared)


def n_of(inputs: Inputs) -> int:
    return len(next(iter(inputs.values())))


def loop_rows(n: int, k: int, row: Callable[[int], Sequence[float]]) -> np.ndarray:
    """out[i] = row(i) for each case; any failure of a case (BaseException included, for
    libraries that panic; but not KeyboardInterrupt/SystemExit) leaves that row NaN."""
    out = np.full((n, k), np.nan)
    for i in range(n):
        try:
            out[i] = row(i)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: B036 - pyo3 PanicException is a BaseException
            pass
    return out


def rotate(mats: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Apply (n, 3, 3) matrices to the (n,) vector components -> (n, 3)."""
    return np.einsum("nij,nj->ni", mats, np.stack([x, y, z], axis=-1))


def vec_to_lonlat(v: np.ndarray) -> np.ndarray:
    """(n, 3) vectors -> (n, 2) longitude in [0, 2pi), latitude (rad)."""
    lon = np.remainder(np.arctan2(v[:, 1], v[:, 0]), 2 * np.pi)
    lat = np.arctan2(v[:, 2], np.hypot(v[:, 0], v[:, 1]))
    return np.stack([lon, lat], axis=-1)

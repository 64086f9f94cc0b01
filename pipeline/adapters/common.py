"""Helpers shared by the adapters: dispatch by experiment, per-case loops that never raise.

Why: a library that panics or fails on one case must cost that case (a NaN row), never the
run; and each adapter's compute() is one timed call that dispatches to `_<experiment>`.

Timing basis (the same for every adapter, stated in every perf contract): compute() starts
from the plain float input arrays and ends with the plain float (n, k) output; every
conversion a user would have to make — Time and frame objects, time scales (TDB -> UT), units,
RA/Dec <-> vectors, arrays -> lists for a per-case loop — happens inside it. prepare() is
untimed and may only configure the library (offline switches, imports) and load data that do
not depend on the inputs (ephemeris files, timescale tables); the worker's domain mask is the
only input reshaping done outside it. Per-case (L) adapters index Python lists, not numpy
arrays, and go through loop_rows, whose cost the worker measures as the harness overhead.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

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


_loop_log: list[tuple[int, int]] | None = None


@contextmanager
def recording_loops() -> Iterator[list[tuple[int, int]]]:
    """Record the (n, k) of every loop_rows call made inside the block: the worker uses it to
    time the same per-case loop around a no-op row (the harness overhead)."""
    global _loop_log
    log: list[tuple[int, int]] = []
    previous, _loop_log = _loop_log, log
    try:
        yield log
    finally:
        _loop_log = previous


def loop_rows(n: int, k: int, row: Callable[[int], Sequence[float]]) -> np.ndarray:
    """out[i] = row(i) for each case; any failure of a case (BaseException included, for
    libraries that panic; but not KeyboardInterrupt/SystemExit) leaves that row NaN.

    The cheapest loop we measured: values are appended to one flat list and converted once
    (~100 ns per case of harness, against ~255 ns for assigning each row into a numpy array;
    a try block costs nothing when nothing is raised). A row of the wrong length is an
    adapter bug and raises ValueError."""
    if _loop_log is not None:
        _loop_log.append((n, k))
    flat: list[float] = []
    extend = flat.extend
    bad = (math.nan,) * k
    for i in range(n):
        try:
            extend(row(i))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: B036 - pyo3 PanicException is a BaseException
            extend(bad)
    if len(flat) != n * k:
        raise ValueError(f"loop_rows: rows must have {k} values each; got {len(flat)} values "
                         f"for {n} rows")
    return np.array(flat, dtype=np.float64).reshape(n, k)


def rotate(mats: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Apply (n, 3, 3) matrices to the (n,) vector components -> (n, 3)."""
    return np.einsum("nij,nj->ni", mats, np.stack([x, y, z], axis=-1))


def vec_to_lonlat(v: np.ndarray) -> np.ndarray:
    """(n, 3) vectors -> (n, 2) longitude in [0, 2pi), latitude (rad)."""
    lon = np.remainder(np.arctan2(v[:, 1], v[:, 0]), 2 * np.pi)
    lat = np.arctan2(v[:, 2], np.hypot(v[:, 0], v[:, 1]))
    return np.stack([lon, lat], axis=-1)

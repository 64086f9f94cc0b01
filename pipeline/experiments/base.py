"""What an experiment is: seeded inputs, the reference, the error metric, the perf contract.

Contract shared by the orchestrator (pipeline-core) and the experiment/adapter modules.
Inputs are a dict of equal-length 1-D numpy arrays (name -> array); outputs are a 2-D float64
array of shape (n, k) whose columns are listed in `output_columns` — every adapter returns the
same columns, which is the experiment's performance contract: no library is timed doing less.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

Inputs = dict[str, np.ndarray]

# The one timing rule, appended to every experiment's perf contract (issue 13: astropy's Time
# and frame objects used to be built untimed while skyfield's were timed).
TIMING_BASIS = (" Timing basis (every library): the timed call starts from the plain float "
                "input arrays and ends with the plain float output array; every conversion a "
                "user would have to make (Time/frame objects, time scales, units, angle "
                "layouts, arrays to lists) is inside it. Untimed prepare() may only configure "
                "the library and load data that do not depend on the inputs (ephemeris files, "
                "timescale tables).")


class Experiment(ABC):
    name: ClassVar[str]             # one of pipeline.catalog.EXPERIMENTS
    title: ClassVar[str]            # one line for summary.md / README
    reference_adapter: ClassVar[str]  # adapter name whose outputs are the truth ("erfa", "de421", "numpy_newton")
    error_unit: ClassVar[str]       # "mas", "arcsec", "rad", "s", ...
    output_columns: ClassVar[tuple[str, ...]]
    perf_contract: ClassVar[str]    # what every timed loop computes and consumes, in words
    tolerance: ClassVar[dict[str, float]] = {}  # adapter -> max error (error_unit) tests assert

    @abstractmethod
    def generate_inputs(self, n: int, seed: int) -> Inputs:
        """N seeded inputs; same (n, seed) -> bit-identical arrays on any run."""

    @abstractmethod
    def error(self, reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        """Per-case error in `error_unit` (shape (n,)), NaN where the candidate is NaN."""

"""What an adapter is: one library's way of computing the experiments it supports.

Adapter modules must not import their astronomy library at module import time (import it
inside methods): the registry is imported by benchd and by the orchestrator's parent process,
and each (adapter, experiment) is measured in its own subprocess.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from pipeline.experiments.base import Inputs


class AdapterUnavailable(Exception):
    """The library cannot be used on this machine (not installed, needs data we lack)."""


class Adapter(ABC):
    name: ClassVar[str]                 # "astropy", "erfa", "siderust", ...
    distribution: ClassVar[str]         # PyPI name for the version in the manifest
    models: ClassVar[dict[str, str]]    # experiment -> model/method used (parity matrix); keys = supported experiments

    @classmethod
    def supports(cls, experiment: str) -> bool:
        return experiment in cls.models

    def version(self) -> str:
        from importlib.metadata import version
        return version(self.distribution)

    def check_available(self) -> None:
        """Raise AdapterUnavailable with a reason when the library cannot run here."""

    def domain(self, experiment: str, inputs: Inputs) -> np.ndarray:
        """Boolean mask (n,) of the cases inside this adapter's valid input domain.
        Out-of-domain cases are counted and reported by the orchestrator, never computed."""
        n = len(next(iter(inputs.values())))
        return np.ones(n, dtype=bool)

    def prepare(self, experiment: str, inputs: Inputs) -> object:
        """Untimed set-up: configure the library and load data that do not depend on the
        inputs (ephemeris files, timescale tables). Never a conversion of the inputs — Time
        and frame objects, time scales, units are built inside compute(), the timed call
        (see pipeline.adapters.common). Default: the inputs themselves."""
        return inputs

    @abstractmethod
    def compute(self, experiment: str, prepared: object) -> np.ndarray:
        """Outputs (n_in_domain, k) float64, columns = the experiment's output_columns.
        This exact call is what gets timed. A case the library fails on yields a NaN row
        (catch BaseException per case for libraries that panic), never an exception."""

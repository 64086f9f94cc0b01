"""The experiments and adapters the pipeline knows, and what benchd shows at /api/experiments.

Import-cheap: importing this module imports numpy and the project's own modules only; every
astronomy library is imported inside adapter methods, in the subprocess that measures it.
"""
from __future__ import annotations

from pipeline.adapters.astropy import AstropyAdapter, AstropyLikeAdapter
from pipeline.adapters.base import Adapter
from pipeline.adapters.de421 import De421Adapter
from pipeline.adapters.ephem import EphemAdapter
from pipeline.adapters.erfa import ErfaAdapter
from pipeline.adapters.novas import NovasAdapter
from pipeline.adapters.numpy_newton import NumpyNewtonAdapter
from pipeline.adapters.palpy import PalpyAdapter
from pipeline.adapters.siderust import SiderustAdapter
from pipeline.adapters.skyfield import SkyfieldAdapter
from pipeline.catalog import EXPERIMENTS as CATALOG
from pipeline.experiments.base import Experiment
from pipeline.experiments.ephemerides import LunarPosition, SolarPosition
from pipeline.experiments.frames import EquEcl, FrameRotationBPN, IcrsEclJ2000, Precession
from pipeline.experiments.kepler import KeplerSolver
from pipeline.experiments.sidereal import EquHorizontal, GmstEra
from pipeline.schema import AdapterModel, ExperimentInfo

_EXPERIMENT_CLASSES: tuple[type[Experiment], ...] = (
    FrameRotationBPN, GmstEra, EquEcl, EquHorizontal, SolarPosition, LunarPosition,
    KeplerSolver, Precession, IcrsEclJ2000,
)

EXPERIMENTS: dict[str, Experiment] = {
    name: cls() for name in CATALOG for cls in _EXPERIMENT_CLASSES if cls.name == name
}

# Reference adapters first, then the candidates in a stable order (the order reports use).
_ADAPTER_CLASSES: tuple[type[Adapter], ...] = (
    ErfaAdapter, De421Adapter, NumpyNewtonAdapter,
    AstropyAdapter, AstropyLikeAdapter, SkyfieldAdapter, PalpyAdapter, SiderustAdapter, EphemAdapter, NovasAdapter,
)

ADAPTERS: dict[str, type[Adapter]] = {cls.name: cls for cls in _ADAPTER_CLASSES}

if set(EXPERIMENTS) != set(CATALOG):  # a catalog name without a module is a bug, said at import
    raise RuntimeError(f"experiments missing a module: {sorted(set(CATALOG) - set(EXPERIMENTS))}")


def candidates(experiment: str) -> list[str]:
    """Adapter names that support `experiment`, its reference adapter excluded."""
    exp = EXPERIMENTS[experiment]
    return [name for name, cls in ADAPTERS.items()
            if cls.supports(experiment) and name != exp.reference_adapter]


def describe() -> list[ExperimentInfo]:
    """Per experiment, in catalog order: what it computes and which adapters (and models) run
    it. benchd serves it (GET /api/experiments); benchctl `experiments` prints it."""
    out = []
    for name, exp in EXPERIMENTS.items():
        ref = ADAPTERS[exp.reference_adapter]
        out.append(ExperimentInfo(
            experiment=name, title=exp.title,
            reference=AdapterModel(name=ref.name, model=ref.models[name]),
            unit=exp.error_unit, perf_contract=exp.perf_contract,
            adapters=[AdapterModel(name=a, model=ADAPTERS[a].models[name])
                      for a in candidates(name)]))
    return out

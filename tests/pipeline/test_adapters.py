"""Adapters: every candidate agrees with its experiment's reference within the tolerance the
experiment states; domains, panics and unavailability are handled, never raised.

In-process and small n (the orchestrator's per-process isolation is tested by pipeline-core).
Nothing here is mocked except where a library's absence must be simulated (novas test).
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import msgspec
import pytest

from pipeline.adapters.base import AdapterUnavailable
from pipeline.adapters.common import loop_rows
from pipeline.adapters.siderust import UT1_HORIZON_JD, SiderustAdapter
from pipeline.catalog import EXPERIMENTS as CATALOG
from pipeline.experiments.common import DE421_END_JD, J2000
from pipeline.registry import ADAPTERS, EXPERIMENTS, candidates, describe

N = 40
PAIRS = [(a, e) for e in CATALOG for a in candidates(e)]
ASTRONOMY_MODULES = ("erfa", "astropy", "skyfield", "skyfield_data", "palpy", "siderust",
                     "ephem", "novas", "jplephem")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open an internet connection fails the test (Unix sockets stay allowed)."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"adapter tried to reach the network: {address!r}")
        return real_connect(self, address)
    monkeypatch.setattr(socket.socket, "connect", guarded)


def _run(adapter_name: str, experiment: str, inputs: dict) -> tuple[np.ndarray, np.ndarray]:
    """(candidate outputs on its domain, domain mask), like the orchestrator does it."""
    adapter = ADAPTERS[adapter_name]()
    adapter.check_available()
    mask = adapter.domain(experiment, inputs)
    sub = {k: v[mask] for k, v in inputs.items()}
    return adapter.compute(experiment, adapter.prepare(experiment, sub)), mask


def _reference(experiment: str, inputs: dict) -> np.ndarray:
    ref = ADAPTERS[EXPERIMENTS[experiment].reference_adapter]()
    return ref.compute(experiment, ref.prepare(experiment, inputs))


@pytest.mark.parametrize("adapter_name,experiment", PAIRS, ids=[f"{a}-{e}" for a, e in PAIRS])
def test_candidate_agrees_with_reference_within_tolerance(adapter_name: str, experiment: str,
                                                          no_network: None) -> None:
    exp = EXPERIMENTS[experiment]
    assert adapter_name in exp.tolerance, f"{experiment} states no tolerance for {adapter_name}"
    inputs = exp.generate_inputs(N, 2024)
    out, mask = _run(adapter_name, experiment, inputs)
    assert mask.sum() > 0
    assert out.shape == (mask.sum(), len(exp.output_columns))
    assert out.dtype == np.float64
    err = exp.error(_reference(experiment, inputs)[mask], out)
    assert np.all(np.isfinite(err)), f"NaN rows inside the domain: {np.flatnonzero(~np.isfinite(err))}"
    assert err.max() <= exp.tolerance[adapter_name], (
        f"{adapter_name}/{experiment}: max error {err.max():.3e} {exp.error_unit} "
        f"> tolerance {exp.tolerance[adapter_name]:.3e}")


def test_every_adapter_declares_a_model_per_supported_experiment_and_known_names() -> None:
    for name, cls in ADAPTERS.items():
        assert cls.name == name
        assert cls.models and set(cls.models) <= set(CATALOG), name
        assert all(isinstance(m, str) and m for m in cls.models.values())
        assert isinstance(cls.distribution, str) and cls.version(cls()) != ""


def test_siderust_domain_counts_epochs_past_its_ut1_horizon_and_compute_never_raises() -> None:
    jd = np.array([2455000.5, UT1_HORIZON_JD - 1.0, 2463872.0, 2470000.5, 2488000.0])
    v = np.array([1.0, 0.0, 0.0])
    inputs = {"tt1": np.full(5, J2000), "tt2": jd - J2000,
              "x": np.full(5, v[0]), "y": np.full(5, v[1]), "z": np.full(5, v[2])}
    adapter = SiderustAdapter()
    mask = adapter.domain("frame_rotation_bpn", inputs)
    assert mask.tolist() == [True, True, False, False, False]
    # Out-of-domain cases reaching compute anyway (they panic inside Rust) become NaN rows.
    out = adapter.compute("frame_rotation_bpn", adapter.prepare("frame_rotation_bpn", inputs))
    assert out.shape == (5, 3)
    assert np.all(np.isfinite(out[:2])) and np.all(np.isnan(out[2:]))
    # precession has no UT1 dependence: every epoch is inside
    assert SiderustAdapter().domain("precession", inputs).all()


def test_siderust_panic_is_a_base_exception_not_an_exception() -> None:
    """Why loop_rows catches BaseException: the real panic must not be an Exception."""
    from siderust import Position
    with pytest.raises(BaseException) as info:
        Position(1.0, 0.0, 0.0, frame="ICRS", center="Geocentric",
                 unit="au").to_frame("EquatorialTrueOfDate", 2470000.5)
    assert not isinstance(info.value, Exception)


def test_loop_rows_turns_failures_into_nan_rows_but_lets_interrupts_through() -> None:
    class Panic(BaseException):
        pass

    def row(i: int) -> tuple[float, float]:
        if i == 1:
            raise Panic("boom")
        if i == 2:
            raise ValueError("bad case")
        return float(i), -float(i)
    out = loop_rows(4, 2, row)
    assert out[0].tolist() == [0.0, 0.0] and out[3].tolist() == [3.0, -3.0]
    assert np.all(np.isnan(out[1:3]))

    def interrupted(i: int) -> tuple[float]:
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        loop_rows(2, 1, interrupted)


@pytest.mark.parametrize("adapter_name", ["de421", "skyfield", "siderust", "palpy", "ephem", "erfa"])
def test_ephemeris_domain_stops_at_de421_end(adapter_name: str) -> None:
    inputs = {"tdb1": np.full(3, J2000),
              "tdb2": np.array([0.0, DE421_END_JD - J2000 - 0.5, DE421_END_JD - J2000 + 10.0])}
    adapter = ADAPTERS[adapter_name]()
    mask = adapter.domain("solar_position", inputs)
    if adapter_name == "erfa":   # epv00 has no hard end; the truth's end is enforced by de421
        assert mask.all()
    else:
        assert mask.tolist() == [True, True, False]


def test_astropy_is_configured_offline(no_network: None) -> None:
    adapter = ADAPTERS["astropy"]()
    adapter.check_available()
    from astropy.utils import data, iers
    assert iers.conf.auto_download is False
    assert data.conf.allow_internet is False
    # an epoch far past any bundled IERS table must compute (degraded), not download or raise
    inputs = EXPERIMENTS["equ_horizontal"].generate_inputs(3, 1)
    inputs["ut1_2"] = np.full(3, 36000.0)
    inputs["tt2"] = inputs["ut1_2"] + inputs["delta_t"] / 86400.0
    out = adapter.compute("equ_horizontal", adapter.prepare("equ_horizontal", inputs))
    assert np.all(np.isfinite(out))


def test_novas_missing_is_reported_as_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated absence (it is installed here): a None entry makes `import novas.compat` fail.
    monkeypatch.setitem(sys.modules, "novas.compat", None)
    with pytest.raises(AdapterUnavailable, match="novas"):
        ADAPTERS["novas"]().check_available()


def test_compute_refuses_an_unsupported_experiment_by_name() -> None:
    with pytest.raises(ValueError, match="does not support experiment 'kepler_solver'"):
        ADAPTERS["astropy"]().compute("kepler_solver", {})


# --- registry ---

def test_registry_import_loads_no_astronomy_library() -> None:
    code = ("import sys, json, pipeline.registry as r; r.describe(); "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {ASTRONOMY_MODULES!r})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_registry_covers_the_catalog_and_the_reference_adapters() -> None:
    assert list(EXPERIMENTS) == list(CATALOG)
    assert {"erfa", "de421", "numpy_newton"} <= set(ADAPTERS)
    for name, exp in EXPERIMENTS.items():
        assert exp.name == name
        assert ADAPTERS[exp.reference_adapter].supports(name)
        assert exp.reference_adapter not in candidates(name)
        assert candidates(name), f"{name} has no candidate"
    assert "erfa" in candidates("solar_position") and "erfa" in candidates("lunar_position")
    assert "palpy" not in candidates("gmst_era")       # palpy has no Earth rotation angle
    assert "siderust" not in candidates("equ_horizontal")


def test_describe_is_json_and_lists_models() -> None:
    rows = json.loads(msgspec.json.encode(describe()))
    assert [r["experiment"] for r in rows] == list(CATALOG)
    for r in rows:
        assert set(r) == {"experiment", "title", "reference", "unit", "perf_contract", "adapters"}
        assert r["reference"]["name"] == EXPERIMENTS[r["experiment"]].reference_adapter
        assert r["reference"]["model"]
        assert r["unit"] in ("mas", "arcsec", "rad")
        assert [a["name"] for a in r["adapters"]] == candidates(r["experiment"])
        assert all(a["model"] for a in r["adapters"])

"""The orchestrator with the real registry (erfa/de421 references, real candidate libraries):
same seed -> identical accuracy numbers; numbers are plausible; timing is recorded."""
from __future__ import annotations

import sys
from pathlib import Path

import msgspec
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import pipeline_run as pr  # noqa: E402

from pipeline import loader, schema  # noqa: E402

EXPS = "gmst_era,solar_position"


def _accuracy(results: Path) -> dict:
    d = loader.load_run(results, loader.latest_run_id(results))
    return {(e, lib): msgspec.to_builtins(r.accuracy)
            for e, x in d.experiments.items() for lib, r in x.libraries.items()}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("real")
    for name in ("a", "b"):
        rc, p = pr.run(["--experiments", EXPS, "--n", "150", "--seed", "42", "--no-perf"],
                       base / name, pr.real_env(), timeout=240)
        assert rc == 0, p.output
    return base / "a", base / "b"


def test_same_seed_identical_accuracy(two_runs: tuple[Path, Path]) -> None:
    a, b = (_accuracy(r) for r in two_runs)
    assert a == b
    compared = [v for v in a.values() if v is not None]
    assert compared and all(v["compared"] > 0 for v in compared)


def test_real_numbers_are_plausible(two_runs: tuple[Path, Path]) -> None:
    d = loader.load_run(two_runs[0], loader.latest_run_id(two_runs[0]))
    gm = d.experiments["gmst_era"].libraries
    assert gm["erfa"].role == schema.ROLE_REFERENCE and gm["erfa"].status == schema.LIB_OK
    ok = [r for r in gm.values() if r.role == schema.ROLE_CANDIDATE and r.status == "ok"]
    assert ok and all(r.accuracy.max < 10.0 for r in ok)     # mas: GMST models agree closely
    assert d.manifest.metadata.adapter_versions["erfa"][0].isdigit()
    assert d.experiments["solar_position"].libraries["de421"].role == schema.ROLE_REFERENCE


def test_ci_mode_records_perf(tmp_path: Path) -> None:
    rc, p = pr.run(["--ci", "--experiments", "gmst_era"], tmp_path, pr.real_env(), timeout=240)
    assert rc == 0, p.output
    d = loader.load_run(tmp_path, loader.latest_run_id(tmp_path))
    assert d.manifest.config.ci and d.manifest.config.n == 200
    assert d.manifest.config.max_perf_seconds == 0.25          # --ci keeps adaptive rounds short
    ref = d.experiments["gmst_era"].libraries["erfa"]
    assert ref.perf.rounds >= 3 and ref.perf.median_ns > 0 and ref.speed_ratio == 1.0
    assert ref.perf.stop_reason in ("precision", "time cap")
    assert len(ref.perf.samples_ns) == ref.perf.rounds and ref.perf.harness_ns is not None

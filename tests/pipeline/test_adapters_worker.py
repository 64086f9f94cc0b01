"""The real adapters inside the real worker subprocess (pipeline.worker, one process per
(adapter, experiment) as the orchestrator runs them): panics stay inside, domains are counted,
an unavailable library is a skip, not a failure."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.schema import LIB_OK, LIB_SKIPPED

ROOT = Path(__file__).resolve().parents[2]


def run_worker(tmp_path: Path, experiment: str, adapter: str, n: int = 60,
               env_extra: dict[str, str] | None = None) -> dict:
    out = tmp_path / f"{experiment}-{adapter}"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_REGISTRY"}
    env.update(env_extra or {})
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.worker", "--experiment", experiment, "--adapter",
         adapter, "--n", str(n), "--seed", "9", "--no-perf", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "result.json").read_text())


def test_siderust_out_of_domain_epochs_are_counted_not_computed(tmp_path: Path) -> None:
    res = run_worker(tmp_path, "frame_rotation_bpn", "siderust")
    assert res["status"] == LIB_OK, res.get("reason")
    dom = res["domain"]
    assert dom["total"] == 60 and dom["out_of_domain"] > 0 and dom["in_domain"] > 0
    assert dom["failed"] == 0


@pytest.mark.parametrize("experiment,adapter", [("lunar_position", "de421"),
                                                ("kepler_solver", "skyfield"),
                                                ("gmst_era", "astropy")])
def test_real_adapter_runs_in_the_worker(tmp_path: Path, experiment: str, adapter: str) -> None:
    res = run_worker(tmp_path, experiment, adapter, n=30)
    assert res["status"] == LIB_OK, res.get("reason")
    assert res["domain"] == {"total": 30, "in_domain": 30, "out_of_domain": 0, "failed": 0}
    assert res["version"]


def test_novas_that_cannot_import_is_skipped_with_its_reason(tmp_path: Path) -> None:
    # Simulated absence: a directory on PYTHONPATH whose novas/compat.py raises ImportError
    # shadows the installed package (it is installed here; a fresh machine might lack it).
    shadow = tmp_path / "shadow" / "novas"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    (shadow / "compat.py").write_text("raise ImportError('libnovas.so: cannot open shared object')\n")
    res = run_worker(tmp_path, "gmst_era", "novas", n=5,
                     env_extra={"PYTHONPATH": str(tmp_path / "shadow") + os.pathsep + str(ROOT)})
    assert res["status"] == LIB_SKIPPED
    assert "novas" in res["reason"] and "libnovas.so" in res["reason"]

"""pipeline.staged: the listing of unpublished runs that benchd serves and `--resume` takes,
read from runs a real orchestrator left behind (interrupted, running, published)."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import pipeline_run as pr  # noqa: E402

from pipeline import schema, staged  # noqa: E402

ARGS = ["--experiments", "gmst_era,kepler_solver", "--n", "10", "--no-perf"]


def test_running_then_interrupted_then_resumed(tmp_path: Path) -> None:
    with pr.Pipeline(ARGS, tmp_path, pr.toy_env(TOY_SLOW_SECONDS="120")) as p:
        p.wait_progress(lambda e: e.get("adapter") == "toy_slow")
        [live] = staged.list_staged(tmp_path)
        assert (live.status, live.in_use, live.resumable) == (schema.RUN_RUNNING, True, False)
        assert live.done == ["gmst_era"] and live.experiments == ["gmst_era", "kepler_solver"]
        os.killpg(p.pgid, signal.SIGTERM)
        assert p.wait(30) == 143, p.output
    [run] = staged.list_staged(tmp_path)
    assert run.run_id == live.run_id and (run.n, run.seed) == (10, 42)
    assert (run.status, run.in_use, run.resumable) == (schema.RUN_INTERRUPTED, False, True)
    assert run.reason == "stopped by SIGTERM" and run.done == ["gmst_era"]
    assert staged.find_staged(tmp_path, run.run_id) == run

    rc, p = pr.run(["--resume", run.run_id], tmp_path, pr.toy_env())
    assert rc == 0, p.output
    assert staged.list_staged(tmp_path) == []           # published runs are not staged
    assert staged.find_staged(tmp_path, run.run_id) is None


def test_a_killed_orchestrator_leaves_a_resumable_running_run(tmp_path: Path) -> None:
    with pr.Pipeline(ARGS, tmp_path, pr.toy_env(TOY_SLOW_SECONDS="120")) as p:
        p.wait_progress(lambda e: e.get("adapter") == "toy_slow")
        os.killpg(p.pgid, signal.SIGKILL)               # no chance to mark anything
        p.wait(30)
    [run] = staged.list_staged(tmp_path)
    assert (run.status, run.in_use, run.resumable) == (schema.RUN_RUNNING, False, True)


def test_unreadable_and_foreign_entries_are_skipped(tmp_path: Path) -> None:
    st = tmp_path / ".staging"
    (st / "2026-01-01_00-00-00").mkdir(parents=True)
    (st / "2026-01-01_00-00-00" / "manifest.json").write_bytes(b"\x00garbage")
    (st / "2026-01-02_00-00-00").mkdir()                # claimed, nothing written yet
    (st / "not-a-run").mkdir()
    (st / "2026-01-03_00-00-00").symlink_to("/etc")
    assert staged.list_staged(tmp_path) == []
    assert staged.list_staged(tmp_path / "absent") == []
    for bad in ("../etc", ".staging", "2026-01-01", ""):
        with pytest.raises(ValueError, match="not a run id"):
            staged.find_staged(tmp_path, bad)
    assert staged.find_staged(tmp_path, "2026-01-03_00-00-00") is None

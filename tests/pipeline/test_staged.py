"""pipeline.staged: the listing of unpublished runs that benchd serves and `--resume` takes,
read from runs a real orchestrator left behind (interrupted, running, published)."""
from __future__ import annotations

import os
import signal
import stat
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


def test_a_killed_orchestrator_leaves_a_resumable_interrupted_run(tmp_path: Path) -> None:
    with pr.Pipeline(ARGS, tmp_path, pr.toy_env(TOY_SLOW_SECONDS="120")) as p:
        p.wait_progress(lambda e: e.get("adapter") == "toy_slow")
        os.killpg(p.pgid, signal.SIGKILL)               # no chance to mark anything
        p.wait(30)
    [run] = staged.list_staged(tmp_path)
    assert (run.status, run.in_use, run.resumable) == (schema.RUN_INTERRUPTED, False, True)
    assert run.reason == staged.ABANDONED_REASON     # the manifest says running: nobody is


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


def _interrupted_run(tmp_path: Path) -> schema.StagedRunSummary:
    with pr.Pipeline(ARGS, tmp_path, pr.toy_env(TOY_SLOW_SECONDS="120")) as p:
        p.wait_progress(lambda e: e.get("adapter") == "toy_slow")
        os.killpg(p.pgid, signal.SIGTERM)
        assert p.wait(30) == 143, p.output
    [run] = staged.list_staged(tmp_path)
    return run


def test_discard_removes_an_interrupted_run_and_nothing_else(tmp_path: Path) -> None:
    rc, p = pr.run(ARGS, tmp_path, pr.toy_env())            # a published run, left alone
    assert rc == 0, p.output
    published = sorted(d.name for d in tmp_path.iterdir() if not d.name.startswith("."))
    run = _interrupted_run(tmp_path)
    gone = staged.discard_staged(tmp_path, run.run_id)
    assert gone is not None and (gone.run_id, gone.done) == (run.run_id, ["gmst_era"])
    assert (gone.in_use, gone.resumable) == (False, False)
    assert staged.list_staged(tmp_path) == [] and os.listdir(tmp_path / ".staging") == []
    assert sorted(d.name for d in tmp_path.iterdir() if not d.name.startswith(".")) == published
    with pytest.raises(staged.NotStaged, match="no staged run"):
        staged.discard_staged(tmp_path, run.run_id)
    with pytest.raises(staged.AlreadyPublished, match="never deleted"):
        staged.discard_staged(tmp_path, published[0])
    for bad in ("../etc", ".staging", "", published[0] + "/.."):
        with pytest.raises(ValueError, match="not a run id"):
            staged.discard_staged(tmp_path, bad)
    rc, p = pr.run(["--resume", run.run_id], tmp_path, pr.toy_env())
    assert rc == 2 and "no staged run" in p.output


def test_discard_refuses_a_run_an_orchestrator_holds(tmp_path: Path) -> None:
    with pr.Pipeline(ARGS, tmp_path, pr.toy_env(TOY_SLOW_SECONDS="120")) as p:
        run_id = p.wait_progress(lambda e: e.get("adapter") == "toy_slow")["run_id"]
        with pytest.raises(staged.StagedRunInUse, match=run_id):
            staged.discard_staged(tmp_path, run_id)
        assert staged.find_staged(tmp_path, run_id).in_use
        os.killpg(p.pgid, signal.SIGTERM)
        p.wait(30)
    assert staged.discard_staged(tmp_path, run_id).run_id == run_id


def test_discard_of_an_unreadable_run_and_of_leftovers_a_crash_left(tmp_path: Path) -> None:
    st = tmp_path / ".staging"
    (st / "2026-01-01_00-00-00" / "gmst_era").mkdir(parents=True)
    (st / "2026-01-01_00-00-00" / "manifest.json").write_bytes(b"\x00garbage")
    leftover = st / f"{staged.DISCARDED_PREFIX}2025-01-01_00-00-00-1-00"  # crash mid-delete
    (leftover / "x").mkdir(parents=True)
    ours = st / f"{staged.DISCARDED_PREFIX}2025-01-01_00-00-00-{os.getpid()}-00"
    (ours / "x").mkdir(parents=True)      # a discard this process is doing right now
    assert staged.discard_staged(tmp_path, "2026-01-01_00-00-00") is None
    assert sorted(os.listdir(st)) == sorted([leftover.name, ours.name])  # only its own
    assert staged.remove_discarded(tmp_path) == 1       # what benchd does at start
    assert os.listdir(st) == [ours.name]
    assert staged.remove_discarded(tmp_path / "absent") == 0


def test_a_lock_held_for_an_instant_is_waited_out(tmp_path: Path) -> None:
    """Listing runs probes each one's lock by taking it for an instant: a discard or resume
    that collides with a probe must not read it as an orchestrator at work; a lock held
    for longer than the patience is."""
    import fcntl
    import threading

    from pipeline import results
    run = tmp_path / ".staging" / "2026-01-01_00-00-00"
    run.mkdir(parents=True)
    probe = os.open(run / results.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(probe, fcntl.LOCK_EX)
    release = threading.Timer(results.LOCK_PATIENCE_S / 4, fcntl.flock, (probe, fcntl.LOCK_UN))
    release.start()
    os.close(results.lock_run(run))
    release.join()
    fcntl.flock(probe, fcntl.LOCK_EX)     # now held like an orchestrator holds it
    with pytest.raises(BlockingIOError):
        results.lock_run(run)
    with pytest.raises(staged.StagedRunInUse):
        staged.discard_staged(tmp_path, run.name)
    os.close(probe)


def test_a_lock_taken_on_a_run_moved_away_mid_lock_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lock_run's identity check: a discard that renames the run between a resuming
    orchestrator's open and its flock leaves it a lock on a discarded run, which it must
    refuse. The window is microseconds wide, so the test widens it: flock is wrapped to do the
    rename first (the only stand-in here; the files, rename and lock are real)."""
    import fcntl

    from pipeline import results
    run = tmp_path / ".staging" / "2026-01-01_00-00-00"
    run.parent.mkdir()
    real_flock = fcntl.flock

    def rename_then_flock(fd: int, op: int) -> None:
        os.rename(run, tmp_path / ".staging" / f".discarded-{len(os.listdir(run.parent))}")
        if recreate:    # and a new run dir appears under the same name, with its own lock
            run.mkdir()
            (run / results.LOCK).write_bytes(b"")
        real_flock(fd, op)

    monkeypatch.setattr(results.fcntl, "flock", rename_then_flock)
    for recreate in (False, True):
        run.mkdir(exist_ok=True)
        with pytest.raises(FileNotFoundError):
            results.lock_run(run)
    monkeypatch.setattr(results.fcntl, "flock", real_flock)
    assert run.is_dir()
    os.close(results.lock_run(run))       # undisturbed, it locks


def test_an_older_orchestrators_lock_still_counts_while_ours_holds_it(tmp_path: Path) -> None:
    """An orchestrator started before an upgrade holds the run's old `.lock`: the run is in
    use (listing, discard, resume). Once it is released, the next lock removes the old file
    and uses the new one (0600)."""
    import fcntl

    from pipeline import results
    run = tmp_path / ".staging" / "2026-01-01_00-00-00"
    run.mkdir(parents=True)
    old = os.open(run / results.LEGACY_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(old, fcntl.LOCK_EX)     # held by a process of our user: this test process
    with pytest.raises(BlockingIOError):
        results.lock_run(run)
    with pytest.raises(staged.StagedRunInUse):
        staged.discard_staged(tmp_path, run.name)
    os.close(old)
    fd = results.lock_run(run)
    assert not (run / results.LEGACY_LOCK).exists()
    assert stat.S_IMODE(os.stat(run / results.LOCK).st_mode) == 0o600
    os.close(fd)

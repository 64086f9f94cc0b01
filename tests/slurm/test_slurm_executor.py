"""benchd --executor slurm against a real Slurm cluster (tests/slurm/conftest.py): the real
pipeline through benchctl, tail -f, cancel, kill -9 of benchd, a time limit, slurmctld
going away and coming back, and Slurm's start order for mixed priorities.

Jobs run the fake orchestrator (tests/support/fake_orchestrator.py) except in the pipeline
test: real processes started by slurmd, held running by a gate file, not by sleeps.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchctl import exitcodes
from tests.slurm.conftest import Cluster
from tests.support import wait_until
from tests.support.benchctl_run import BENCHCTL, bc, env_for
from tests.support.daemon import Daemon

PIPELINE = [sys.executable, "-m", "pipeline"]
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """Create this file to let a held fake-orchestrator job finish."""
    return tmp_path / "gate"


def _running(d: Daemon, job_id: str, timeout: float = 60) -> dict:
    return d.wait_job(job_id, ("running",), timeout=timeout)


def test_twenty_queued_jobs_start_in_the_order_of_their_mapped_nice(
        slurm_daemon, slurm: Cluster, gate: Path) -> None:
    """A first job holds one of the node's CPUs until all 20 are queued (one CPU each),
    so they are pending together when it ends; Slurm then starts them as CPUs free up, in
    scheduling passes seconds apart. Their start times (Slurm's, whole seconds) must not
    decrease along benchd's order: priority first, submission order within a priority.
    First in the module: no other job (the time-limit one) may hold a CPU meanwhile."""
    d = slurm_daemon()
    d.set_spec(lines=1, wait_for_file=str(gate))
    blocker = d.start_job(experiments=["gmst_era"])["job_id"]
    _running(d, blocker)
    d.set_spec(lines=1, wait_for_file=str(gate))
    filler = d.start_job(experiments=["gmst_era"], priority=10)["job_id"]  # the other CPU
    _running(d, filler)
    d.set_spec(lines=1)
    priorities = [0, 3, -2, 10, 0, -10, 5, 3, 1, -2, 7, 0, 2, -5, 10, 4, -1, 6, 0, 3]
    jobs = []
    for p in priorities:
        rec = d.start_job(experiments=["gmst_era"], priority=p)
        assert rec["status"] == "queued" and rec["slurm_job_id"], rec
        jobs.append((p, rec["job_id"], rec["slurm_job_id"]))
    wait_until(lambda: all((d.job(j)["slurm_state"] or "").startswith("PENDING")
                           for _, j, _ in jobs), 30, 0.2, "every job pending in Slurm")
    gate.touch()
    for _, job_id, _ in jobs:
        assert d.wait_job(job_id, timeout=180)["status"] == "completed"
    starts = {line.split("|")[0]: line.split("|")[1] for line in slurm.run(
        "sacct", "-c", "-n", "-P", "--jobs=" + ",".join(s for _, _, s in jobs),
        "--format=JobID,Start").stdout.splitlines() if line.strip()}
    expected = [s for _, _, s in sorted(jobs, key=lambda j: -j[0])]  # stable: FIFO within
    got = [starts[s] for s in expected]
    assert got == sorted(got), [(p, s, starts[s]) for p, _, s in sorted(jobs,
                                                                       key=lambda j: -j[0])]
    assert len(set(got)) >= 8, f"too few scheduling passes to tell an order: {got}"


def test_pipeline_through_benchctl_publishes_and_history_shows_the_slurm_id(
        slurm_daemon, slurm: Cluster, over_time_limit) -> None:
    d = slurm_daemon(orchestrator=PIPELINE)
    health = d.get("/api/health").json()
    assert health["executor"].startswith("slurm") and "slurmctld up" in health["executor"]
    r = bc(d, "run", "--wait", "-e", "gmst_era", "--n", "200", timeout=300)
    assert r.returncode == exitcodes.OK, (r.stdout, r.stderr, d.stderr_text()[-2000:])
    job = d.get("/api/benchmark/jobs?limit=1").json()["jobs"][0]
    assert job["status"] == "completed" and job["slurm_job_id"], job
    assert job["slurm_state"].startswith("COMPLETED"), job
    run_dir = d.root / job["run_dir"]
    assert (run_dir / "manifest.json").is_file(), sorted(p.name for p in run_dir.iterdir())
    # Slurm's own record of that job: our name, and it ran to completion
    acct = slurm.run("sacct", "-c", "-n", "-P", f"--jobs={job['slurm_job_id']}",
                     "--format=JobName,State").stdout
    assert f"benchd-{job['job_id']}|COMPLETED" in acct
    hist = bc(d, "history")
    assert hist.returncode == 0 and "SLURM" in hist.stdout.splitlines()[0]
    assert job["slurm_job_id"] in hist.stdout.splitlines()[1].split()
    detail = bc(d, "status", job["job_id"])
    assert f"slurm job:" in detail.stdout and job["slurm_job_id"] in detail.stdout
    assert "executor: slurm" in bc(d, "status").stdout


def test_tail_follow_while_the_job_runs_under_slurm(slurm_daemon, gate: Path,
                                                     tmp_path: Path) -> None:
    d = slurm_daemon()
    d.set_spec(lines=30, lines_per_s=30, wait_for_file=str(gate))
    job_id = d.start_job(experiments=["gmst_era"])["job_id"]
    out_path = tmp_path / "tail.out"
    with open(out_path, "wb") as out:
        tail = subprocess.Popen([*BENCHCTL, "tail", "-f", "-n", "100000", job_id],
                                stdout=out, stderr=subprocess.PIPE, env=env_for(d),
                                stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: b"line 29 of 30" in out_path.read_bytes(), 60, 0.05,
                   "tail -f printed the job's lines while it runs under Slurm")
        _running(d, job_id, 30)   # benchd sees it at its next squeue (POLL_S)
        gate.touch()
        _, err = tail.communicate(timeout=60)
    finally:
        gate.touch()
        if tail.poll() is None:
            tail.kill()
            tail.wait(5)
    assert tail.returncode == exitcodes.OK, err
    assert out_path.read_bytes() == d.log_file(job_id).read_bytes()


def test_cancel_during_a_run_is_cancelled_and_leaves_nothing_in_squeue(
        slurm_daemon, slurm: Cluster) -> None:
    d = slurm_daemon()
    d.set_spec(lines=1, ignore_sigterm=True, wait_for_file="/nonexistent/never")
    job_id = d.start_job(experiments=["gmst_era"])["job_id"]
    rec = _running(d, job_id)
    sid = rec["slurm_job_id"]
    assert sid in slurm.queue()
    r = bc(d, "cancel", job_id, "--grace", "1", timeout=60)
    assert r.returncode == exitcodes.JOB_CANCELLED, (r.stdout, r.stderr)
    rec = d.job(job_id)
    assert rec["status"] == "cancelled" and rec["cancel_requested_by"] == 0, rec
    assert rec["reason"].startswith("cancelled by root"), rec
    wait_until(lambda: sid not in slurm.queue(), 30, 0.1, "the job to leave squeue")


def test_kill9_of_benchd_then_restart_reattaches_and_records_the_outcome(
        slurm_daemon, gate: Path) -> None:
    d = slurm_daemon()
    d.set_spec(lines=3, wait_for_file=str(gate), exit_code=3, stderr_line="boom at the end")
    job_id = d.start_job(experiments=["gmst_era"])["job_id"]
    sid = _running(d, job_id)["slurm_job_id"]
    d.kill9()
    d.start(timeout=90)
    rec = d.job(job_id)
    assert rec["status"] == "running" and rec["slurm_job_id"] == sid, rec
    assert f"job {job_id}: Slurm job {sid} RUNNING" in d.stderr_text()
    assert "reattached" in d.stderr_text()
    # both CPUs are busy (this job, the time-limit one): the restart did not wait for a
    # free node to probe the filesystem again, a probe passed on this root before
    assert "checking again in the background" in d.stderr_text()
    gate.touch()
    rec = d.wait_job(job_id, timeout=60)
    assert rec["status"] == "failed" and rec["exit_code"] == 3, rec
    assert "Slurm: FAILED (NonZeroExitCode) ExitCode 3:0" in rec["reason"], rec
    assert "boom at the end" in rec["reason"]


def test_a_job_that_ends_while_benchd_is_down_gets_slurms_outcome_at_restart(
        slurm_daemon, slurm: Cluster, gate: Path) -> None:
    d = slurm_daemon()
    d.set_spec(lines=1, wait_for_file=str(gate), exit_code=0)
    job_id = d.start_job(experiments=["gmst_era"])["job_id"]
    sid = _running(d, job_id)["slurm_job_id"]
    d.kill9()
    gate.touch()
    wait_until(lambda: sid not in slurm.queue(), 30, 0.1, "the job to end in Slurm")
    d.start(timeout=90)
    rec = d.wait_job(job_id, timeout=30)
    assert rec["status"] == "completed" and rec["exit_code"] == 0, rec
    assert rec["slurm_state"].startswith("COMPLETED"), rec
    assert f"Slurm job {sid} ended while benchd was down" in d.stderr_text()


def test_a_crash_between_sbatch_and_recording_the_id_submits_nothing_twice(
        slurm_daemon, slurm: Cluster, gate: Path) -> None:
    """The record says a submission began (spawn_attempts) but holds no Slurm id, as if
    benchd died right after sbatch: the restart finds the job by name, never sbatches it
    again. The record is rewritten by hand, benchd being down: the window is too narrow to
    hit with a real kill."""
    d = slurm_daemon()
    d.set_spec(lines=1, wait_for_file=str(gate))
    job_id = d.start_job(experiments=["gmst_era"])["job_id"]
    rec = _running(d, job_id)
    sid = rec["slurm_job_id"]
    d.kill9()
    path = d.root / "logs" / "jobs" / f"{job_id}.json"
    disk = json.loads(path.read_text())
    disk.update(status="queued", slurm_job_id=None, slurm_state=None, started_at=None)
    path.write_text(json.dumps(disk))
    d.start(timeout=90)
    wait_until(lambda: d.job(job_id)["slurm_job_id"] == sid, 30, 0.1, "the id found by name")
    assert f"found its Slurm job {sid} by name" in d.stderr_text()
    _running(d, job_id)
    named = slurm.run("squeue", "--noheader", f"--name=benchd-{job_id}", "-o", "%i").stdout
    assert named.split() == [sid]
    gate.touch()
    assert d.wait_job(job_id, timeout=60)["status"] == "completed"


def test_slurmctld_down_refuses_starts_with_503_and_the_outcome_survives(
        slurm_daemon, slurm: Cluster, gate: Path, daemon_factory) -> None:
    d = slurm_daemon()
    d.set_spec(lines=1, wait_for_file=str(gate))
    job_id = d.start_job(experiments=["gmst_era"])["job_id"]
    _running(d, job_id)
    slurm.stop_ctld()
    r = d.post_json("/api/benchmark/jobs", {"experiments": ["gmst_era"]})
    assert r.status == 503 and r.error["code"] == "executor_unavailable", r.body
    assert "slurmctld" in r.error["message"]
    assert "unreachable" in d.get("/api/health").json()["executor"]
    run = bc(d, "run", "-e", "gmst_era")
    assert run.returncode == exitcodes.UNAVAILABLE and "slurmctld" in run.stderr, run
    other = daemon_factory(start=False, extra_args=["--executor", "slurm"])
    other.start(wait=False)           # a benchd cannot check the shared filesystem now
    assert other.proc is not None and other.proc.wait(timeout=60) == 1
    assert "slurmctld does not answer" in other.stderr_text(), other.stderr_text()
    gate.touch()                      # the job ends while slurmctld is away
    assert d.job(job_id)["status"] == "running"   # kept until Slurm answers
    slurm.start_ctld()
    rec = d.wait_job(job_id, timeout=90)
    assert rec["status"] == "completed" and rec["exit_code"] == 0, rec
    wait_until(lambda: "slurmctld up" in d.get("/api/health").json()["executor"], 30, 0.2,
               "health to say slurmctld is up")
    assert d.start_job(experiments=["gmst_era"])["slurm_job_id"]


def test_pause_holds_a_pending_job_in_slurm_and_priority_renices_it(
        slurm_daemon, slurm: Cluster, gate: Path) -> None:
    """Jobs held by a gate take every CPU (--exclusive: one is enough), so the next one
    stays pending while it is paused, resumed and re-prioritised."""
    d = slurm_daemon("--slurm-extra", "--exclusive")
    d.set_spec(lines=1, wait_for_file=str(gate))
    d.start_job(experiments=["gmst_era"])
    job_id = d.start_job(experiments=["gmst_era"])["job_id"]
    sid = d.job(job_id)["slurm_job_id"]

    def show() -> str:
        return slurm.run("scontrol", "-o", "show", "job", sid).stdout
    assert " Priority=0 " not in show()
    r = bc(d, "pause", job_id)
    assert r.returncode == 0 and d.job(job_id)["status"] == "paused", (r.stdout, r.stderr)
    assert " Priority=0 " in show() and "JobHeld" in show()      # held in Slurm
    r = bc(d, "resume", job_id)
    assert r.returncode == 0 and d.job(job_id)["status"] == "queued", (r.stdout, r.stderr)
    assert " Priority=0 " not in show() and "JobHeld" not in show()
    assert d.request("PATCH", f"/api/benchmark/jobs/{job_id}", b'{"priority": 4}',
                     {"Content-Type": "application/json"}).status == 200
    assert " Nice=-4000 " in show()
    assert d.job(job_id)["status"] == "queued"


def test_pause_of_a_running_job_checkpoints_and_resume_submits_a_new_batch_job(
        slurm_daemon, slurm: Cluster, gate: Path) -> None:
    """Pause of a job Slurm runs: the checkpoint request on the shared root, the batch job
    ends at the experiment boundary (exit 75) and the job is paused with its staged run;
    resume submits a new batch job (the old id kept as history) that finishes that run."""
    d = slurm_daemon()
    d.set_spec(lines=1, wait_for_file=str(gate), staging=True)
    job_id = d.start_job(experiments=["gmst_era", "kepler_solver"])["job_id"]
    first = _running(d, job_id)["slurm_job_id"]
    r = bc(d, "pause", job_id)
    assert r.returncode == 0 and d.job(job_id)["status"] == "pausing", (r.stdout, r.stderr)
    gate.touch()                                   # it reaches its first boundary
    rec = d.wait_job(job_id, ("paused",), timeout=60)
    run = rec["resume_run"]
    assert run and rec["checkpoints"] == 1 and "checkpointed" in rec["reason"], rec
    assert rec["slurm_job_id"] is None and rec["slurm_past_ids"] == [first], rec
    wait_until(lambda: first not in slurm.queue(), 30, 0.1, "the paused batch job to leave")
    r = bc(d, "resume", job_id)
    assert r.returncode == 0, (r.stdout, r.stderr)
    done = d.wait_job(job_id, timeout=120)
    assert done["status"] == "completed", done
    assert done["slurm_job_id"] not in (None, first) and done["slurm_past_ids"] == [first]
    assert done["run_dir"] == f"results/{run}"     # the same run, finished
    assert f"resume={run}" in d.log_file(job_id).read_text()


@pytest.fixture(scope="module")
def over_time_limit(slurm_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[tuple[Daemon, str]]:
    """A job of its own benchd (--slurm-time-limit 1) that never ends by itself. Slurm's
    smallest limit is one minute, enforced about every 30 s: started by the first test
    that asks for it, so that the minute passes while the other tests run; checked by
    test_a_job_over_its_time_limit_ends_failed_with_timeout at the end of the module."""
    d = Daemon(tmp_path_factory.mktemp("timeout") / "root",
               extra_args=["--executor", "slurm", "--slurm-time-limit", "1"],
               spec={"lines": 1, "wait_for_file": "/nonexistent/never"})
    try:
        d.start(timeout=90)
        rec = d.start_job(experiments=["gmst_era"])
        slurm_cluster.keep.add(rec["slurm_job_id"])
        yield d, rec["job_id"]
    finally:
        d.close()


def test_a_job_over_its_time_limit_ends_failed_with_timeout(over_time_limit) -> None:
    d, job_id = over_time_limit
    rec = d.wait_job(job_id, timeout=180)
    assert rec["status"] == "failed", rec
    assert "Slurm: TIMEOUT (TimeLimit)" in rec["reason"], rec
    assert rec["slurm_state"].startswith("TIMEOUT"), rec


def test_benchd_refuses_to_start_when_the_nodes_cannot_write_the_root(
        slurm: Cluster, daemon_factory, tmp_path: Path) -> None:
    """The probe's files never reach the root within --slurm-probe-timeout: here because
    the probe job is deferred (--begin through --slurm-extra) -- to benchd the same as nodes
    that write elsewhere. benchd exits 1 saying why, and leaves no probe job behind."""
    d = daemon_factory(start=False, extra_args=[
        "--executor", "slurm", "--slurm-probe-timeout", "3",
        "--slurm-extra", "--begin=now+3600"])
    d.start(wait=False)
    assert d.proc is not None
    assert d.proc.wait(timeout=60) == 1
    err = d.stderr_text()
    assert "did not write to the benchd root" in err and "shared with the nodes" in err, err
    assert not set(slurm.queue()) - slurm.keep, "the probe job was not cancelled"

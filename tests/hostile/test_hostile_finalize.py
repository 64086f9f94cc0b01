"""Finalizing a job when the disk will not take its record: `logs/` on a real tmpfs with a
tiny inode table (nr_inodes=) that the test exhausts, a real daemon killed with SIGKILL and
restarted, real supervisors killed. The outcome on disk (the supervisor's exit record) is
never removed before a final record holding it is durable; a damaged record on a full disk
does not stop benchd; a job that cannot get a record is refused (507), not half-started;
a killed supervisor's reserve goes; a staged run whose orchestrator died is not "running"."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import msgspec

from benchd.jobs import RECOVERED_REQUESTER
from benchd.schema import JobRecord
from benchd.states import JobState
from tests.hostile.test_hostile_disk import says_disk_full
from tests.pipeline.fixtures import pipeline_run as pr
from tests.support.benchctl_run import bc
from tests.support.daemon import Daemon, wait_until

JOBS = "/api/benchmark/jobs"
SIDE_FILES = ("lock", "pid", "cancel", "exit", "reserve")
INODES = 64     # a tmpfs this small in inodes is exhausted in a few milliseconds


def exhaust_inodes(fs: Path) -> Path:
    """Create empty files on the filesystem at `fs` until it has no free inode left; returns
    their directory (rmtree it to give the inodes back)."""
    filler = fs / "filler"
    filler.mkdir()
    for i in range(INODES * 4):
        try:
            os.close(os.open(filler / str(i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
            break
    assert os.statvfs(fs).f_favail == 0, os.statvfs(fs)
    return filler


def record_on_disk(d: Daemon, job_id: str) -> JobRecord:
    return msgspec.json.decode((d.root / "logs" / "jobs" / f"{job_id}.json").read_bytes(),
                               type=JobRecord)


def side_files(d: Daemon, job_id: str) -> list[str]:
    jobs = d.root / "logs" / "jobs"
    return [s for s in SIDE_FILES if (jobs / f"{job_id}.{s}").exists()]


def gated_daemon(daemon_factory, tmpfs) -> tuple[Daemon, Path, Path]:  # type: ignore[no-untyped-def]
    """A daemon whose jobs run until `gate` exists, its logs/ on an inode-starved tmpfs."""
    d: Daemon = daemon_factory(start=False)
    gate = d.root / "gate"
    d.set_spec(wait_for_file=str(gate))
    logs = tmpfs(d.root / "logs", "8m", nr_inodes=INODES)
    d.start()
    return d, gate, logs


def test_job_completing_on_an_inode_full_disk_reads_completed_after_kill9(
        tmpfs, daemon_factory) -> None:
    d, gate, logs = gated_daemon(daemon_factory, tmpfs)
    job = d.start_job()["job_id"]
    filler = exhaust_inodes(logs)
    gate.touch()   # the supervisor frees its reserve's inode and writes its exit record there
    final = d.wait_job(job)
    assert (final["status"], final["exit_code"]) == ("completed", 0), final
    assert record_on_disk(d, job).status == JobState.RUNNING   # benchd could not write it
    assert "exit" in side_files(d, job)     # so the exit record is the outcome's only copy
    d.kill9()
    d.start()                                # inodes still exhausted
    rec = d.job(job)
    assert (rec["status"], rec["exit_code"]) == ("completed", 0), rec
    assert "exit" in side_files(d, job)
    d.kill9()
    shutil.rmtree(filler)                    # a person frees inodes
    d.start()
    rec = d.job(job)
    assert (rec["status"], rec["exit_code"]) == ("completed", 0), rec
    on_disk = record_on_disk(d, job)
    assert (on_disk.status, on_disk.exit_code) == (JobState.COMPLETED, 0), on_disk
    assert side_files(d, job) == []          # gone only now that the record holds the outcome


def test_damaged_record_on_a_full_disk_at_start_up(tmpfs, daemon_factory) -> None:
    d, gate, logs = gated_daemon(daemon_factory, tmpfs)
    job = d.start_job()["job_id"]
    d.kill9()
    record = logs / "jobs" / f"{job}.json"
    damaged = record.read_bytes()[:20]        # torn by whatever benchd died of
    record.write_bytes(damaged)
    filler = exhaust_inodes(logs)             # no inode for corrupt/ nor for a new record
    d.start()
    rec = d.job(job)                          # rebuilt from the supervisor's files, reattached
    assert (rec["status"], rec["requester_name"]) == ("running", RECOVERED_REQUESTER), rec
    assert record.read_bytes() == damaged     # kept in place, never overwritten unseen
    gate.touch()
    final = d.wait_job(job)
    assert (final["status"], final["exit_code"]) == ("completed", 0), final
    assert "exit" in side_files(d, job)
    shutil.rmtree(filler)                     # space returns; a graceful restart writes it
    d.restart(kill=False)
    on_disk = record_on_disk(d, job)
    assert (on_disk.status, on_disk.exit_code) == (JobState.COMPLETED, 0), on_disk
    [aside] = list((logs / "jobs" / "corrupt").iterdir())
    assert aside.name.startswith(f"{job}.json.") and aside.read_bytes() == damaged
    assert side_files(d, job) == []
    assert d.job(job)["status"] == "completed"


def test_start_on_an_inode_full_logs_fs_is_507(tmpfs, daemon_factory) -> None:
    d: Daemon = daemon_factory(start=False)
    logs = tmpfs(d.root / "logs", "8m", nr_inodes=INODES)
    d.start()
    filler = exhaust_inodes(logs)
    r = d.post_json(JOBS, {})
    assert r.status == 507 and r.error["code"] == "insufficient_storage", (r.status, r.body)
    assert "inodes" in r.error["message"] and says_disk_full(r.error["message"]), r.error
    assert d.get(JOBS).json()["jobs"] == []   # nothing started, no phantom job
    assert d.get("/api/health").json()["active_job"] is None
    cli = subprocess.run([str(Path(sys.executable).parent / "benchctl"), "--socket",
                          str(d.socket_path), "run"], capture_output=True, text=True, timeout=30)
    assert cli.returncode == 10 and "inodes" in cli.stderr, (cli.returncode, cli.stderr)
    assert [p.name for p in (logs / "jobs").iterdir()] == []
    shutil.rmtree(filler)
    assert d.wait_job(d.start_job()["job_id"])["status"] == "completed"


def test_killed_supervisors_reserve_is_removed_when_benchd_finalizes(daemon_factory) -> None:
    d: Daemon = daemon_factory(start=False)
    gate = d.root / "gate"
    d.set_spec(wait_for_file=str(gate))
    d.start()
    # benchd up: it sees its supervisor die
    job = d.start_job()
    reserve = d.root / "logs" / "jobs" / f"{job['job_id']}.reserve"
    assert reserve.stat().st_size > 0
    os.kill(job["supervisor_pid"], signal.SIGKILL)
    assert d.wait_job(job["job_id"])["status"] == "unknown"
    assert side_files(d, job["job_id"]) == []
    # benchd down: it finds the job's supervisor gone at start-up
    job = d.start_job()
    d.kill9()
    os.kill(job["supervisor_pid"], signal.SIGKILL)
    wait_until(lambda: not os.path.exists(f"/proc/{job['supervisor_pid']}"), 30, 0.02,
               "the killed supervisor to be gone")
    d.start()
    assert d.job(job["job_id"])["status"] == "unknown"
    assert side_files(d, job["job_id"]) == []


def test_staged_run_of_a_job_ended_unknown_is_not_listed_running(daemon_factory) -> None:
    """The real orchestrator (toy registry, one slow "library"); its supervisor is killed, so
    the job ends unknown and benchd kills the orchestrator, which never updates its manifest."""
    env = {"PYTHONPATH": os.pathsep.join([str(Path(pr.__file__).parent), str(pr.ROOT)]),
           "PIPELINE_REGISTRY": "toy_registry", "TOY_SLOW_SECONDS": "120"}
    d: Daemon = daemon_factory(orchestrator=[sys.executable, "-m", "pipeline"], env=env)
    job = d.start_job(experiments=["gmst_era", "kepler_solver"], n=10, no_perf=True)
    wait_until(lambda: (d.job(job["job_id"]).get("progress") or {}).get("experiment")
               == "kepler_solver", 60, what="the slow experiment")
    run_id = d.job(job["job_id"])["progress"]["run_id"]
    os.kill(job["supervisor_pid"], signal.SIGKILL)
    assert d.wait_job(job["job_id"])["status"] == "unknown"
    manifest = d.root / "results" / ".staging" / run_id / "manifest.json"
    assert json.loads(manifest.read_bytes())["status"] == "running"   # what it left behind
    [run] = d.get("/api/results/staged").json()["runs"]
    assert (run["run_id"], run["status"], run["in_use"], run["resumable"]) == \
        (run_id, "interrupted", False, True), run
    assert "no process holds the run's lock" in run["reason"], run   # says why
    r = bc(d, "results", "--staged", "--json")
    assert r.returncode == 0, r.stderr
    assert [(x["run_id"], x["status"]) for x in json.loads(r.stdout)["runs"]] == \
        [(run_id, "interrupted")]
    r = bc(d, "results", "--staged")
    row = next(line for line in r.stdout.splitlines() if line.startswith(run_id))
    assert r.returncode == 0 and row.split()[1] == "interrupted", r.stdout

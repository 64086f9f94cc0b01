"""Full disks: `logs/` or `results/` on a small real tmpfs (mounted here, unmounted in
teardown) that a job fills. The job ends `failed` with a reason that says the disk is full,
benchd keeps serving and is not left busy, no job record is truncated or corrupted, and a
published run is never partial."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec

from benchd.schema import JobRecord
from benchd.states import JobState
from tests.hostile.loadrun import firehose_argv
from tests.support.daemon import Daemon, wait_until

JOBS = "/api/benchmark/jobs"
DISK_FULL = ("no space", "disk full", "enospc", "filesystem is full")


def records_on_disk(root: Path) -> dict[str, JobRecord]:
    """Every job record decodes (a torn or truncated one raises here)."""
    dec = msgspec.json.Decoder(JobRecord)
    jobs = root / "logs" / "jobs"
    assert not (jobs / "corrupt").exists()
    return {p.stem: dec.decode(p.read_bytes()) for p in jobs.glob("*.json")}


def says_disk_full(text: str | None) -> bool:
    return bool(text) and any(w in text.lower() for w in DISK_FULL)


def test_log_filesystem_fills_during_a_job(tmpfs, daemon_factory) -> None:
    d: Daemon = daemon_factory(start=False, orchestrator=firehose_argv(0, 0, "--lines", "200000"))
    logs = tmpfs(d.root / "logs", "2m")
    d.start()
    job = d.start_job()
    final = d.wait_job(job["job_id"], timeout=60)
    assert final["status"] == "failed", final
    assert says_disk_full(final["reason"]), final["reason"]
    assert final["exit_code"] not in (None, 0), final  # the true exit status, kept
    assert shutil.disk_usage(logs).free < 256 * 1024  # it really was full
    # benchd keeps serving and is not stuck on the dead job
    health = d.get("/api/health").json()
    assert health["active_job"] is None, health
    r = d.post_json(JOBS, {})  # the disk is still full: refused or failed, clearly, promptly
    if r.status == 201:
        assert r.json()["status"] == "failed" and says_disk_full(r.json()["reason"]), r.json()
        second = r.json()["job_id"]
        d.wait_job(second)
    else:
        assert 400 <= r.status < 600 and says_disk_full(r.error["message"]), (r.status, r.body)
        second = None
    assert d.get("/api/health").json()["active_job"] is None
    # a person frees space: the big log goes; benchd works again and the records are whole
    d.log_file(job["job_id"]).unlink()
    d.orchestrator = firehose_argv(0, 0, "--lines", "10")
    d.restart(kill=False)
    recs = records_on_disk(d.root)
    assert recs[job["job_id"]].status == JobState.FAILED, recs[job["job_id"]]
    assert says_disk_full(recs[job["job_id"]].reason)
    if second is not None:
        assert recs[second].status == JobState.FAILED
    third = d.start_job()
    assert d.wait_job(third["job_id"])["status"] == "completed"
    assert all(r.status in (JobState.COMPLETED, JobState.FAILED)
               for r in records_on_disk(d.root).values())


def test_results_filesystem_fills_nothing_partial_is_published(tmpfs, daemon_factory) -> None:
    """The real pipeline (gmst_era, --ci) publishing into a results filesystem that fills up
    once the job runs (a job is not started on a results filesystem that is already full:
    that is a 507, test_hostile_retention.py). The filler is written right after the start
    answer, while the orchestrator is still importing its libraries (over a second), well
    before its first result write."""
    d: Daemon = daemon_factory(start=False, orchestrator=[sys.executable, "-m", "pipeline"])
    results = tmpfs(d.root / "results", "2m")
    d.start()
    job = d.start_job(experiments=["gmst_era"], ci=True)
    try:
        with open(results / ".filler", "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError:
        pass
    final = d.wait_job(job["job_id"], timeout=240)
    log = d.log_file(job["job_id"]).read_text(errors="replace")
    assert final["status"] == "failed", (final, log[-2000:])
    assert says_disk_full(final["reason"]), final["reason"]
    assert final["run_dir"] is None
    published = [p for p in results.iterdir() if not p.name.startswith(".")]
    assert published == [], published  # staged work may stay; nothing half-published
    assert d.get("/api/results").json()["runs"] == []
    assert records_on_disk(d.root)[job["job_id"]].status == JobState.FAILED
    assert d.get("/api/health").json()["active_job"] is None


def test_results_filesystem_fills_fake_publisher(tmpfs, daemon_factory) -> None:
    """Quick variant without the real pipeline: a job that stages 4 MiB into a 1 MiB
    results filesystem fails naming the full disk; its staging never becomes a run."""
    d: Daemon = daemon_factory(start=False, orchestrator=firehose_argv(
        0, 0, "--lines", "100", "--fill-results", str(4 << 20)))
    results = tmpfs(d.root / "results", "1m")
    d.start()
    final = d.wait_job(d.start_job()["job_id"], timeout=60)
    assert final["status"] == "failed" and final["exit_code"] == 28, final
    assert says_disk_full(final["reason"]), final["reason"]
    assert not (results / "firehose-run").exists()
    assert d.get("/api/health").json()["active_job"] is None


def test_log_filesystem_fills_while_benchd_is_down(tmpfs, daemon_factory) -> None:
    """benchd is killed; its job fills logs/ and dies; benchd restarts on the full disk: it
    comes up, records the job failed naming the full disk (not a silent 'unknown'), is not
    busy, and writes the record once there is room."""
    d: Daemon = daemon_factory(start=False, orchestrator=firehose_argv(0, 0, "--lines", "200000"))
    tmpfs(d.root / "logs", "2m")
    d.set_spec()
    d.start()
    gate = d.root / "gate"  # not used by the firehose; the job runs at once
    job = d.start_job()
    supervisor = job["supervisor_pid"]
    d.kill9()
    wait_until(lambda: not os.path.exists(f"/proc/{supervisor}"), 60, 0.02,
               "the job's supervisor to exit")
    d.start()
    rec = d.job(job["job_id"])
    assert rec["status"] == "failed" and says_disk_full(rec["reason"]), rec
    assert rec["exit_code"] not in (None, 0), rec
    assert d.get("/api/health").json()["active_job"] is None
    r = d.post_json(JOBS, {})
    assert r.status == 507 and says_disk_full(r.error["message"]), (r.status, r.body)
    cli = subprocess.run([str(Path(sys.executable).parent / "benchctl"), "--socket",
                          str(d.socket_path), "run"], capture_output=True, text=True, timeout=30)
    assert cli.returncode == 10 and says_disk_full(cli.stderr), (cli.returncode, cli.stderr)
    d.log_file(job["job_id"]).unlink()
    d.restart(kill=False)
    assert records_on_disk(d.root)[job["job_id"]].status == JobState.FAILED
    assert not gate.exists()

"""The queue end to end: a real benchd, real supervisors and fake orchestrators, the real
benchctl. Queued starts, `benchctl queue/priority/wait`, 429 with Retry-After, and kill -9 of
benchd with 20 jobs queued and one running: the same order after the restart, and every job
completes exactly once in that order."""
from __future__ import annotations

import json
from pathlib import Path

from tests.support.benchctl_run import bc
from tests.support.daemon import daemon_factory, wait_until  # noqa: F401 (fixture)

JOBS = "/api/benchmark/jobs"


def _queued_order(d) -> list[str]:
    jobs = d.get(f"{JOBS}?status=queued").json()["jobs"]
    return [j["job_id"] for j in sorted(jobs, key=lambda j: j["queue_position"])]


def test_kill9_with_20_queued_and_one_running_keeps_the_order_and_all_complete(
        daemon_factory) -> None:
    d = daemon_factory()
    gate = d.root / "gate"
    d.set_spec(wait_for_file=str(gate), lines=1)
    running = d.start_job(experiments=["gmst_era"])["job_id"]
    d.wait_job(running, ("running",))
    queued = []
    for i in range(20):  # two users' worth of order: priorities and FIFO
        cfg = {"experiments": ["gmst_era"], "label": f"q{i}", "priority": [0, -1, 2][i % 3]}
        rec = d.start_job(**cfg)
        assert rec["status"] == "queued" and rec["queue_position"] >= 1, rec
        queued.append(rec["job_id"])
    before = _queued_order(d)
    assert sorted(before) == sorted(queued)
    d.kill9()
    d.start()
    assert _queued_order(d) == before                      # same order after the restart
    assert d.get("/api/health").json()["active_job"]["job_id"] == running
    gate.touch()
    finals = [d.wait_job(j, timeout=120) for j in [running, *before]]
    assert all(f["status"] == "completed" and f["spawn_attempts"] == 1 for f in finals), \
        [(f["job_id"], f["status"], f["spawn_attempts"]) for f in finals]
    started = [f["job_id"] for f in sorted(finals, key=lambda f: f["started_at"])]
    assert started == [running, *before]                   # started in the queue's order
    for a, b in zip(finals, finals[1:]):                   # never two at once (one slot)
        assert b["started_at"] >= a["finished_at"]


def test_benchctl_queue_priority_wait_and_the_queue_cap(daemon_factory) -> None:
    d = daemon_factory(extra_args=["--max-queued-per-user", "2"])
    gate = d.root / "gate"
    d.set_spec(wait_for_file=str(gate), lines=1)
    first = d.start_job()["job_id"]
    r = bc(d, "run", "-e", "gmst_era", "--label", "later")
    assert r.returncode == 0 and "queued (position 1)" in r.stderr, (r.returncode, r.stderr)
    second = r.stdout.strip()
    third = d.start_job(experiments=["gmst_era"])["job_id"]
    over = d.post_json(JOBS, {})
    assert over.status == 429 and over.error["code"] == "queue_full", over.body
    assert int(over.headers["retry-after"]) >= 1
    assert bc(d, "run").returncode == 12                   # QUEUE_FULL
    r = bc(d, "queue")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert first in lines[1] and "running" in lines[1]
    assert lines[2].split()[:2] == ["1", second] and "later" in lines[2]
    assert lines[3].split()[:2] == ["2", third]
    r = bc(d, "priority", third, "3")                      # root may raise above 0
    assert r.returncode == 0 and "position 1" in r.stdout, (r.returncode, r.stdout, r.stderr)
    assert json.loads(bc(d, "queue", "--json").stdout)[1]["job_id"] == third
    r = bc(d, "wait", second, "--timeout", "0.3")
    assert r.returncode == 124, (r.returncode, r.stderr)
    r = bc(d, "cancel", second)                            # queued: at once
    assert r.returncode == 3, r.stderr
    gate.touch()
    r = bc(d, "wait", first, third, timeout=60)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    r = bc(d, "wait", first, second)                       # the cancelled one decides
    assert r.returncode == 3, (r.returncode, r.stdout)


def test_run_wait_waits_through_the_queue_showing_the_position(daemon_factory) -> None:
    d = daemon_factory()
    gate = d.root / "gate"
    d.set_spec(wait_for_file=str(gate), lines=1)
    first = d.start_job()["job_id"]
    import subprocess
    from tests.support.benchctl_run import BENCHCTL, env_for
    p = subprocess.Popen([*BENCHCTL, "run", "--wait", "-e", "gmst_era"], text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(d))
    try:
        wait_until(lambda: d.get(f"{JOBS}?status=queued").json()["jobs"], 15,
                   what="the second job queued")
        gate.touch()
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert "queued, position 1 in the queue" in err, err
    assert d.job(first)["status"] == "completed"


def test_benchctl_pause_holds_a_queued_job_and_resume_releases_it(daemon_factory) -> None:
    d = daemon_factory()
    gate = d.root / "gate"
    d.set_spec(wait_for_file=str(gate), lines=1)
    first = d.start_job()["job_id"]
    a = d.start_job()["job_id"]
    b = d.start_job()["job_id"]
    r = bc(d, "pause", a)
    assert r.returncode == 0 and "paused" in r.stdout, (r.returncode, r.stdout, r.stderr)
    gate.touch()
    assert d.wait_job(b, timeout=60)["status"] == "completed"   # b took the slot, not a
    assert d.job(a)["status"] == "paused"
    r = bc(d, "resume", a)
    assert r.returncode == 0, r.stderr
    assert d.wait_job(a, timeout=60)["status"] == "completed"
    assert bc(d, "resume", a).returncode == 8              # not paused any more


def test_run_preempt_now_preempts_a_running_job_at_once_and_status_shows_the_queue(
        daemon_factory) -> None:
    d = daemon_factory()
    d.set_spec(wait_for_file=str(d.root / "gate-never"), lines=1, staging=True, resume_ok=True)
    low = d.start_job(experiments=["gmst_era", "equ_ecl"], label="low")["job_id"]
    wait_until(lambda: (d.job(low).get("progress") or {}).get("run_id"), 15,
               what="the low job's run id")
    d.set_spec(lines=1, staging=True, resume_ok=True)          # the jobs started from now on run through
    waiting = d.start_job(experiments=["gmst_era"], priority=-1, label="later-one")
    r = bc(d, "status")
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if waiting["job_id"] in line)
    assert row.split()[:4] == ["1", waiting["job_id"], "queued", "-1"] and "later-one" in row
    r = bc(d, "run", "-e", "gmst_era", "--priority", "5", "--preempt-now", "--label", "urgent",
           "--wait", timeout=60)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    final = d.wait_job(low, timeout=60)
    assert final["status"] == "completed" and final["checkpoints"] == 1, final
    assert "preempt requested by" in d.log_file(low).read_text()   # SIGTERM, not a boundary
    audit = d.stderr_text()                                        # who took its slot, and how
    assert f"audit: job {low} preempting for job " in audit and " (now) of user root" in audit
    assert f"audit: job {low} preempted for job " in audit, audit
    assert d.wait_job(waiting["job_id"], timeout=60)["status"] == "completed"

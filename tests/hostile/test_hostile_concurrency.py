"""Concurrent use of one benchd: cancel storms, start/cancel cycles under polling, cancels
racing a job's own end. No 5xx, no job left active, no process of a job left alive."""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from benchd.procs import pids_with_marker
from tests.hostile.rawhttp import call
from tests.support.daemon import Daemon, wait_until

JOBS = "/api/benchmark/jobs"
JSON = {"Content-Type": "application/json"}


def test_thirty_concurrent_cancels_of_one_job(daemon_factory) -> None:
    """The job ignores SIGTERM, so the cancels all wait out the 1 s grace together."""
    d: Daemon = daemon_factory(grace=1.0)
    d.set_spec(wait_for_file=str(d.root / "never"), ignore_sigterm=True, double_fork=True)
    job_id = d.start_job()["job_id"]
    log = d.log_file(job_id)  # its first line comes after it has set SIGTERM to ignored
    wait_until(lambda: b"fake orchestrator pid" in log.read_bytes(), 20, 0.01, "the job's start")
    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(lambda _: call(d.socket_path, "POST", f"{JOBS}/{job_id}/cancel",
                                               b'{"grace": 1}', JSON, timeout=60), range(30)))
    statuses = sorted(r.status for r in answers)
    assert set(statuses) <= {200, 409}, [(r.status, r.body[:200]) for r in answers]
    assert statuses.count(200) >= 1
    for r in answers:
        if r.status == 200:
            assert r.json()["status"] == "cancelled" and r.json()["signal"] == "SIGKILL"
        else:
            assert r.json()["error"]["code"] == "not_cancellable"
    assert d.job(job_id)["status"] == "cancelled"
    assert pids_with_marker(job_id) == []  # the double-forked grandchild too
    assert d.get("/api/health").json()["active_job"] is None


def test_start_cancel_cycles_under_polling(daemon_factory) -> None:
    d: Daemon = daemon_factory(grace=1.0)
    d.set_spec(wait_for_file=str(d.root / "never"), lines=50)
    stop = threading.Event()
    bad: list[str] = []

    def poll() -> None:
        paths = ["/api/health", JOBS, f"{JOBS}?status=running,starting", f"{JOBS}?limit=3"]
        i = 0
        while not stop.is_set():
            r = call(d.socket_path, "GET", paths[i % len(paths)])
            i += 1
            if r.status != 200:
                bad.append(f"{paths[i % len(paths)]}: {r.status} {r.body[:200]!r}")

    pollers = [threading.Thread(target=poll, daemon=True) for _ in range(4)]
    for t in pollers:
        t.start()
    ids = []
    try:
        for _ in range(12):
            r = call(d.socket_path, "POST", JOBS, b"{}", JSON)
            assert r.status == 201, r.body
            job_id = r.json()["job_id"]
            ids.append(job_id)
            r = call(d.socket_path, "POST", f"{JOBS}/{job_id}/cancel", b"", timeout=30)
            assert r.status == 200 and r.json()["status"] == "cancelled", r.body
    finally:
        stop.set()
        for t in pollers:
            t.join(30)
    assert bad == []
    jobs = d.get(JOBS).json()["jobs"]
    assert [j["job_id"] for j in jobs] == ids[::-1]
    assert all(j["status"] == "cancelled" for j in jobs)
    assert all(pids_with_marker(j) == [] for j in ids)
    for j in ids:
        rec = json.loads((d.root / "logs" / "jobs" / f"{j}.json").read_text())
        assert rec["status"] == "cancelled"


def test_cancel_racing_the_jobs_own_end(daemon_factory) -> None:
    """A cancel sent just as the job exits by itself: the answer is the final record (or
    409 once it is final), never a 5xx, and the record agrees with the answer."""
    d: Daemon = daemon_factory(grace=1.0)
    for i in range(8):
        gate = d.root / f"gate{i}"
        d.set_spec(wait_for_file=str(gate), exit_code=i % 3)
        job_id = d.start_job()["job_id"]
        go = threading.Barrier(2)
        answer: list = []

        def cancel() -> None:
            go.wait()
            answer.append(call(d.socket_path, "POST", f"{JOBS}/{job_id}/cancel", b"",
                               timeout=30))

        t = threading.Thread(target=cancel)
        t.start()
        go.wait()
        gate.touch()
        t.join(60)
        r = answer[0]
        assert r.status in (200, 409), (r.status, r.body)
        final = d.wait_job(job_id)
        if r.status == 200:
            assert r.json()["status"] == final["status"]
        assert final["status"] in ("cancelled", "completed", "failed")
        if final["status"] == "completed":
            assert final["exit_code"] == 0
        assert pids_with_marker(job_id) == []
    wait_until(lambda: d.get("/api/health").json()["active_job"] is None, 10)

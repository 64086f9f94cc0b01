"""Queue figures (issue 11), printed as a table, each against its target:

  submit p99      POST /api/benchmark/jobs to a real benchd (one job running) while 1,000
                  jobs are already queued: p50/p99 of the next 200 submits   (target < 20 ms)
  end -> next     a job's exit record (finished_at, written by its supervisor) -> the next
                  queued job's orchestrator running (its started_at), one slot
                                              (target < 100 ms + one interpreter start)
  restart         1,000 queued + 10,000 finished records on disk: JobManager() +
                  reconcile() until the queue is known             (target < 1.5 s)

    .venv/bin/python bench/queue_figures.py [--queued 1000] [--finished 10000] [--runs 10]

The orchestrator is tests/support/fake_orchestrator.py (a real process with the real argv).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchd.jobs import JobManager  # noqa: E402
from benchd.schema import JobConfig, JobRecord  # noqa: E402
from benchd.states import JobState  # noqa: E402
from benchd.store import Store, utc_now  # noqa: E402
from tests.support.daemon import Daemon, wait_until  # noqa: E402

JOBS = "/api/benchmark/jobs"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def submit_latency(queued: int, measured: int = 200) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="qbench-") as tmp:
        d = Daemon(Path(tmp) / "root", extra_args=["--max-queued-per-user", str(queued + 1000)])
        try:
            d.start()
            d.set_spec(wait_for_file=str(d.root / "gate-never"))
            d.start_job()
            for _ in range(queued):
                assert d.post_json(JOBS, {"experiments": ["gmst_era"]}).status == 201
            out = []
            for i in range(measured):
                t0 = time.perf_counter()
                r = d.post_json(JOBS, {"experiments": ["gmst_era"], "priority": -(i % 3)})
                out.append((time.perf_counter() - t0) * 1000)
                assert r.status == 201 and r.json()["status"] == "queued", r.body
            return out
        finally:
            d.close()


def end_to_next(runs: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="qbench-") as tmp:
        d = Daemon(Path(tmp) / "root")
        try:
            d.start()
            out = []
            for i in range(runs):
                gate = d.root / f"gate{i}"
                d.set_spec(wait_for_file=str(gate), lines=0)
                first = d.start_job(experiments=["gmst_era"])["job_id"]
                d.set_spec(lines=0)
                nxt = d.start_job(experiments=["gmst_era"])["job_id"]
                gate.touch()
                a = d.wait_job(first)
                b = d.wait_job(nxt, ("running", "completed"))
                dt = (datetime.fromisoformat(b["started_at"])
                      - datetime.fromisoformat(a["finished_at"])).total_seconds()
                out.append(dt * 1000)
                d.wait_job(nxt)
            return out
        finally:
            d.close()


def interpreter_start(runs: int = 10) -> float:
    xs = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        xs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(xs)


def restart(queued: int, finished: int, runs: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="qbench-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        store = Store(root)
        cfg = JobConfig(experiments=["gmst_era"], ci=True)
        for i in range(finished):
            store.save(JobRecord(job_id=secrets.token_hex(6), status=JobState.COMPLETED,
                                 config=cfg, requester_uid=1, requester_name="u",
                                 created_at=utc_now(), started_at=utc_now(),
                                 finished_at=utc_now(), exit_code=0))
        for i in range(queued):
            store.save(JobRecord(job_id=secrets.token_hex(6), status=JobState.QUEUED,
                                 config=cfg, requester_uid=1 + i % 5, requester_name="u",
                                 created_at=utc_now(), queue_seq=i + 1, queue_key=i + 1))
        # no free slot (a job "running" elsewhere would take it): slots=0 keeps the queue
        # as it is, so each run measures the same load + reconcile
        out = []
        for _ in range(runs):
            async def once() -> float:
                t0 = time.perf_counter()
                m = JobManager(root, orchestrator=["true"], slots=0)
                await m.reconcile()
                assert len(m.queue_positions()) == queued
                dt = time.perf_counter() - t0
                await m.close()
                return dt * 1000
            out.append(asyncio.run(once()))
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queued", type=int, default=1000)
    ap.add_argument("--finished", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=10)
    a = ap.parse_args()
    sub = submit_latency(a.queued)
    nxt = end_to_next(a.runs)
    boot = interpreter_start()
    rst = restart(a.queued, a.finished, max(3, a.runs // 3))
    print(f"| figure | p50 | p99 / max | target |")
    print(f"|---|---:|---:|---|")
    print(f"| submit with {a.queued} queued | {pct(sub, 50):.1f} ms | {pct(sub, 99):.1f} ms "
          f"| p99 < 20 ms |")
    print(f"| job end -> next orchestrator running | {pct(nxt, 50):.1f} ms | {max(nxt):.1f} ms"
          f" | < 100 ms + one interpreter start ({boot:.0f} ms here) |")
    print(f"| restart, {a.queued} queued + {a.finished} finished | {pct(rst, 50):.0f} ms | "
          f"{max(rst):.0f} ms | < 1500 ms |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""benchd API figures, side by side in one run (prints a table; run from the checkout):

    .venv/bin/python bench/benchd_api.py [--jobs 10000] [--lines 300]

1. log line latency, write -> HTTP follower (?follow=1), p50/p99, with 1 and with 50
   followers (target p99 < 25 ms), next to a bare reader polling the file itself every 1 ms
   (the floor any follower over a file can reach);
2. GET /api/benchmark/jobs with N jobs in history (target < 100 ms), next to
   ?limit=20 and /api/health on the same daemon; then a page of 20 deep in the history
   (?before=<the job 90 % of the way back>) next to the first page (target: the same cost,
   a page is found by position: O(limit + log n)), and a filtered page (?user=) beside it;
3. restart-to-ready with N jobs: spawn -> READY=1 on a NOTIFY_SOCKET and -> first 200 from
   /api/health (target < 1.5 s), next to an empty root;
4. daemon RSS after those requests (target < 80 MB).
History is generated with the job store's own writer (benchd.store.Store.save).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from benchd.schema import JobConfig, JobRecord, Progress  # noqa: E402
from benchd.states import JobState  # noqa: E402
from benchd.store import Store  # noqa: E402
from tests.support.daemon import Daemon  # noqa: E402

# The "orchestrator" for the latency runs: each line carries its CLOCK_MONOTONIC write time
# (system-wide on Linux, so comparable in the reading process). Pipeline args are ignored.
STAMPER = r"""
import os, sys, time
n, rate = int(os.environ["BENCH_LINES"]), float(os.environ["BENCH_RATE"])
gate = os.environ["BENCH_GATE"]
while not os.path.exists(gate):
    time.sleep(0.002)
for i in range(n):
    sys.stdout.write(f"stamp {i} {time.monotonic_ns()}\n"); sys.stdout.flush()
    time.sleep(1.0 / rate)
"""


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def lat_from(buf: bytes, out: list[float]) -> bytes:
    *lines, rest = buf.split(b"\n")
    now = time.monotonic_ns()
    for line in lines:
        if line.startswith(b"stamp "):
            out.append((now - int(line.split()[2])) / 1e6)
    return rest


async def http_follower(sock: str, job_id: str, out: list[float], ready: asyncio.Event,
                        n_ready: list[int], total: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock)) as s:
        async with s.get(f"http://b/api/benchmark/jobs/{job_id}/logs?follow=1") as r:
            n_ready[0] += 1
            if n_ready[0] == total:
                ready.set()
            rest = b""
            while chunk := await r.content.readany():
                rest = lat_from(rest + chunk, out)


async def file_follower(path: Path, out: list[float], stop: asyncio.Event) -> None:
    """Baseline: read the log file directly, polling every 1 ms."""
    with open(path, "rb") as f:
        rest = b""
        while True:
            chunk = f.read()
            if chunk:
                rest = lat_from(rest + chunk, out)
            elif stop.is_set():
                return
            await asyncio.sleep(0.001)


def latency_run(tmp: Path, followers: int, lines: int, rate: float) -> tuple[list[float], list[float]]:
    gate = tmp / f"gate-{followers}"
    d = Daemon(tmp / f"lat-{followers}", orchestrator=[sys.executable, "-c", STAMPER],
               env={"BENCH_LINES": str(lines), "BENCH_RATE": str(rate), "BENCH_GATE": str(gate)})
    try:
        d.start()
        job = d.start_job()
        log_path = d.log_file(job["job_id"])

        async def main() -> tuple[list[float], list[float]]:
            http: list[list[float]] = [[] for _ in range(followers)]
            base: list[float] = []
            ready, n_ready, stop = asyncio.Event(), [0], asyncio.Event()
            tasks = [asyncio.create_task(http_follower(str(d.socket_path), job["job_id"], h,
                                                       ready, n_ready, followers)) for h in http]
            await asyncio.wait_for(ready.wait(), 60)
            ftask = asyncio.create_task(file_follower(log_path, base, stop))
            gate.touch()
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
            stop.set()
            await ftask
            return [x for h in http for x in h], base

        return asyncio.run(main())
    finally:
        d.close()


def make_history(root: Path, n: int) -> None:
    store = Store(root)
    (root / "logs" / "jobs").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        store.save(JobRecord(
            job_id=secrets.token_hex(6), status=JobState.COMPLETED,
            config=JobConfig(experiments=["gmst_era", "equ_ecl"], n=1000),
            requester_uid=1000 + i % 7, requester_name=f"user{i % 7}",
            created_at="2026-01-01T00:00:00.000+00:00", started_at="2026-01-01T00:00:01.000+00:00",
            finished_at="2026-01-01T00:10:00.000+00:00", exit_code=0,
            run_dir=f"results/2026-01-01_00-00-{i % 60:02d}",
            progress=Progress(k=2, total=2, experiment="equ_ecl", phase="published")))


def timed(d: Daemon, path: str, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        r = d.get(path)
        out.append((time.perf_counter() - t0) * 1e3)
        assert r.status == 200, (path, r.status)
    return out


def ready_times(d: Daemon, tmp: Path) -> tuple[float, float]:
    """Spawn benchd; ms until READY=1 arrives, and until /api/health first answers 200."""
    npath = tmp / f"n-{secrets.token_hex(3)}.sock"
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(str(npath))
    ns.settimeout(30)
    try:
        t0 = time.perf_counter()
        d.start(wait=False, extra_env={"NOTIFY_SOCKET": str(npath)})
        while b"READY=1" not in ns.recv(4096):
            pass
        t_ready = (time.perf_counter() - t0) * 1e3
        d.wait_ready(30)
        return t_ready, (time.perf_counter() - t0) * 1e3
    finally:
        ns.close()
        npath.unlink(missing_ok=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--lines", type=int, default=300, help="log lines per latency run")
    ap.add_argument("--rate", type=float, default=100.0, help="lines per second")
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="benchd-bench-") as t:
        tmp = Path(t)
        for n in (1, 50):
            http, base = latency_run(tmp, n, a.lines, a.rate)
            p99 = pct(http, 0.99)
            rows.append((f"log latency, {n} HTTP follower(s) (n={len(http)})",
                         f"p50 {pct(http, .5):.1f} ms  p99 {p99:.1f} ms",
                         f"bare 1 ms file poll: p50 {pct(base, .5):.1f} p99 {pct(base, .99):.1f} ms",
                         "ok" if p99 < 25 else "MISSED (p99 < 25 ms)"))

        empty = Daemon(tmp / "empty")
        try:
            r_empty, h_empty = ready_times(empty, tmp)
            rss_empty = rss_mb(empty.proc.pid)
        finally:
            empty.close()
        big = Daemon(tmp / "big")
        t0 = time.perf_counter()
        make_history(big.root, a.jobs)
        gen_s = time.perf_counter() - t0
        try:
            big.start()
            big.kill9()  # restart-to-ready: after a crash, like systemd's Restart=on-failure
            r_big, h_big = ready_times(big, tmp)
            full = timed(big, "/api/benchmark/jobs", a.reps)
            ids = [j["job_id"] for j in big.get("/api/benchmark/jobs").json()["jobs"]]
            n_listed = len(ids)
            lim = timed(big, "/api/benchmark/jobs?limit=20", a.reps)
            deep_cursor = ids[int(len(ids) * 0.9)]
            deep = timed(big, f"/api/benchmark/jobs?limit=20&before={deep_cursor}", a.reps)
            deep_ids = [j["job_id"] for j in big.get(
                f"/api/benchmark/jobs?limit=20&before={deep_cursor}").json()["jobs"]]
            assert deep_ids == ids[int(len(ids) * 0.9) + 1:][:20], "deep page is wrong"
            first = timed(big, "/api/benchmark/jobs?limit=20", a.reps)
            filt = timed(big, "/api/benchmark/jobs?limit=20&user=user3", a.reps)
            hl = timed(big, "/api/health", a.reps)
            rss_big = rss_mb(big.proc.pid)
        finally:
            big.close()
        assert n_listed == a.jobs, n_listed
        rows.append((f"GET /api/benchmark/jobs, {a.jobs} jobs ({a.reps} reps)",
                     f"median {statistics.median(full):.1f} ms  max {max(full):.1f} ms",
                     f"?limit=20: {statistics.median(lim):.2f} ms; /api/health: "
                     f"{statistics.median(hl):.2f} ms",
                     "ok" if max(full) < 100 else "MISSED (< 100 ms)"))
        ratio = statistics.median(deep) / statistics.median(first)
        rows.append((f"page of 20, {int(a.jobs * 0.9)} jobs deep ({a.reps} reps)",
                     f"median {statistics.median(deep):.2f} ms  max {max(deep):.2f} ms",
                     f"first page: median {statistics.median(first):.2f} ms  max "
                     f"{max(first):.2f} ms; ?user= page: {statistics.median(filt):.2f} ms",
                     "ok" if ratio < 1.5 else f"MISSED (deep/first = {ratio:.2f}, < 1.5)"))
        rows.append((f"restart-to-ready, {a.jobs} jobs (after kill -9)",
                     f"READY=1 {r_big:.0f} ms  health {h_big:.0f} ms",
                     f"empty root: READY=1 {r_empty:.0f} ms  health {h_empty:.0f} ms",
                     "ok" if max(r_big, h_big) < 1500 else "MISSED (< 1.5 s)"))
        rows.append((f"daemon RSS, {a.jobs} jobs, after the lists", f"{rss_big:.1f} MB",
                     f"empty root: {rss_empty:.1f} MB", "ok" if rss_big < 80 else "MISSED (< 80 MB)"))
    widths = [max(len(r[i]) for r in rows + [("what", "benchd", "side by side", "target")])
              for i in range(4)]
    print(f"history generated with Store.save: {a.jobs} records in {gen_s:.1f} s; "
          f"{os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    for r in [("what", "benchd", "side by side", "target")] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()

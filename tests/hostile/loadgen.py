"""Load on a real benchd from one client process: `hammer` (N clients looping over the
status/history/job/log endpoints for a bounded time) or `follow` (N HTTP followers of one job's
log, each reading it from offset 0 to the end). Prints one JSON object on stdout.

    python tests/hostile/loadgen.py hammer --socket S --job ID --clients 100 --seconds 5
    python tests/hostile/loadgen.py follow --socket S --job ID --followers 50

Used by tests/hostile/test_hostile_load.py and bench/hostile_report.py. aiohttp only (no
benchd imports), so it measures the daemon from outside, as a client would.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from typing import Any

import aiohttp

BASE = "http://benchd"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; 0 for none."""
    if not values:
        return 0.0
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def _session(socket_path: str, timeout: float) -> aiohttp.ClientSession:
    conn = aiohttp.UnixConnector(path=socket_path, limit=0)
    return aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout))


async def hammer(socket_path: str, job_id: str, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` concurrent loops over five read endpoints until `seconds` have passed."""
    paths = ["/api/health", "/api/benchmark/jobs?limit=20", "/api/benchmark/jobs",
             f"/api/benchmark/jobs/{job_id}", f"/api/benchmark/jobs/{job_id}/logs?tail=50"]
    latencies: dict[str, list[float]] = {p: [] for p in paths}
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    async def client(i: int, session: aiohttp.ClientSession) -> None:
        n = i
        while time.monotonic() < deadline:
            path = paths[n % len(paths)]
            n += 1
            t0 = time.perf_counter()
            try:
                async with session.get(BASE + path) as r:
                    body = await r.read()
                    if r.status != 200:
                        errors.append(f"{path}: HTTP {r.status} {body[:200]!r}")
                        continue
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                errors.append(f"{path}: {type(e).__name__}: {e}")
                continue
            latencies[path].append(time.perf_counter() - t0)

    async with _session(socket_path, 30.0) as session:
        await asyncio.gather(*(client(i, session) for i in range(clients)))
    every = [x for v in latencies.values() for x in v]
    return {
        "requests": len(every) + len(errors), "errors": len(errors), "error_samples": errors[:10],
        "seconds": seconds, "clients": clients,
        "p50_ms": percentile(every, 50) * 1e3, "p99_ms": percentile(every, 99) * 1e3,
        "max_ms": max(every, default=0.0) * 1e3,
        "by_path": {p: {"n": len(v), "p99_ms": percentile(v, 99) * 1e3}
                    for p, v in latencies.items()},
    }


async def follow(socket_path: str, job_id: str, followers: int, timeout: float,
                 reconnect: bool = False) -> dict[str, Any]:
    """`followers` concurrent GET .../logs?follow=1&offset=0, each read to the end. With
    `reconnect`, a cut stream (benchd killed) is resumed at the byte offset reached, the way
    benchctl does, until the stream ends cleanly or `timeout` passes."""
    deadline = time.monotonic() + timeout

    async def one(session: aiohttp.ClientSession) -> dict[str, Any]:
        h = hashlib.sha256()
        size = 0
        cuts = 0
        while True:
            try:
                async with session.get(f"{BASE}/api/benchmark/jobs/{job_id}/logs",
                                       params={"follow": "1", "offset": str(size)}) as r:
                    if r.status != 200:
                        raise aiohttp.ClientResponseError(r.request_info, (), status=r.status)
                    if int(r.headers["X-Log-Offset"]) != size:
                        return {"error": f"X-Log-Offset {r.headers['X-Log-Offset']} != {size}",
                                "bytes": size, "sha256": h.hexdigest(), "cuts": cuts}
                    async for chunk in r.content.iter_any():
                        h.update(chunk)
                        size += len(chunk)
                return {"error": None, "bytes": size, "sha256": h.hexdigest(), "cuts": cuts}
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                if not reconnect or time.monotonic() > deadline:
                    return {"error": f"{type(e).__name__}: {e}", "bytes": size,
                            "sha256": h.hexdigest(), "cuts": cuts}
                cuts += 1
                await asyncio.sleep(0.05)  # benchd is restarting: try again

    async with _session(socket_path, timeout) as session:
        results = await asyncio.gather(*(one(session) for _ in range(followers)))
    return {"followers": results}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="loadgen")
    p.add_argument("mode", choices=["hammer", "follow"])
    p.add_argument("--socket", required=True)
    p.add_argument("--job", required=True)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--followers", type=int, default=50)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--reconnect", action="store_true", help="resume cut streams at the offset")
    a = p.parse_args(argv)
    if a.mode == "hammer":
        out = asyncio.run(hammer(a.socket, a.job, a.clients, a.seconds))
    else:
        out = asyncio.run(follow(a.socket, a.job, a.followers, a.timeout, a.reconnect))
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

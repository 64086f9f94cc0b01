#!/usr/bin/env python3
"""Notification figures, side by side in one run (prints a table; run from the checkout):

    .venv/bin/python bench/notify_latency.py [--jobs 20] [--requests 400]

1. final state -> webhook received: for --jobs jobs with a webhook target, the time from the
   job's final record (its finished_at) to the receiver getting the signed event (target: < 1 s);
2. /api/health latency p50/p99 over --requests requests, with no target hanging and then with a
   receiver that never answers holding one attempt open per job (target: p99 within 20 %).
A real benchd (fake orchestrator), a real aiohttp receiver on 127.0.0.1 checking signatures.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.daemon import Daemon, wait_until  # noqa: E402
from tests.support.receivers import WebhookReceiver, new_secret  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def health_ms(d: Daemon, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert d.get("/api/health").status == 200
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--requests", type=int, default=400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, WebhookReceiver(new_secret()) as hook, \
            WebhookReceiver(new_secret(), mode="hang") as stuck:
        d = Daemon(Path(tmp) / "root")
        d.start()
        try:
            lat = []
            for _ in range(args.jobs):
                r = d.post_json("/api/benchmark/jobs",
                                {"notify": [{"url": hook.url, "secret": hook.secret}]})
                job = d.wait_job(r.json()["job_id"])
                hook.wait_for(lambda h: any(a.body["data"]["job"]["job_id"] == job["job_id"]
                                            for a in h.delivered()))
                got = next(a for a in hook.delivered()
                           if a.body["data"]["job"]["job_id"] == job["job_id"])
                finished = dt.datetime.fromisoformat(job["finished_at"]).timestamp()
                lat.append((got.received_at - finished) * 1e3)
            quiet = health_ms(d, args.requests)
            for _ in range(min(args.jobs, 8)):
                r = d.post_json("/api/benchmark/jobs",
                                {"notify": [{"url": stuck.url, "secret": stuck.secret}]})
                d.wait_job(r.json()["job_id"])
            wait_until(lambda: stuck.seen(), timeout=20)
            busy = health_ms(d, args.requests)
        finally:
            d.close()
    print("| measure | p50 | p99 | max |\n|---|---:|---:|---:|")
    print(f"| final record -> webhook received ({args.jobs} jobs), ms | {pct(lat, .5):.1f} | "
          f"{pct(lat, .99):.1f} | {max(lat):.1f} |")
    print(f"| /api/health, no receiver hanging, ms | {pct(quiet, .5):.2f} | "
          f"{pct(quiet, .99):.2f} | {max(quiet):.2f} |")
    print(f"| /api/health, a receiver hanging, ms | {pct(busy, .5):.2f} | "
          f"{pct(busy, .99):.2f} | {max(busy):.2f} |")
    print(f"\np99 ratio hanging/quiet: {pct(busy, .99) / pct(quiet, .99):.2f} (target <= 1.20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

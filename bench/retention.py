#!/usr/bin/env python3
"""Retention figures, side by side in one run (prints a table; run from the checkout):

    .venv/bin/python bench/retention.py [--runs 10000] [--gb 5]

Makes --runs published runs (real orchestrator output, toy registry, cloned with hard links;
each padded with a sparse file so the runs total --gb GB), then:
1. /api/health and GET /api/benchmark/jobs?limit=20 latency p50/p99 on a benchd without a
   policy (baseline), and on a benchd with --keep-days 30 while it prunes them all at start
   (target: p99 unchanged within 20 %: pruning runs off the event loop);
2. how long the prune took (start to the last run gone) and benchd's peak RSS (VmHWM).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import msgspec  # noqa: E402

from pipeline import schema  # noqa: E402
from tests.support.daemon import Daemon  # noqa: E402
from tests.support.runs import toy_run  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def make_runs(template: Path, results: Path, n: int, pad: int) -> None:
    manifest = msgspec.json.decode((template / "manifest.json").read_bytes(),
                                   type=schema.Manifest)
    t0 = time.time() - 100 * 86400
    for k in range(n):
        rid = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(t0 - k * 60))
        dst = results / rid
        subprocess.run(["cp", "-al", str(template), str(dst)], check=True)
        os.unlink(dst / "manifest.json")
        m = msgspec.structs.replace(manifest, run_id=rid)
        (dst / "manifest.json").write_bytes(schema.encode(m))
        with open(dst / "padding.bin", "wb") as f:
            f.truncate(pad)


def sample(d: Daemon, stop: threading.Event, out: dict[str, list[float]]) -> None:
    while not stop.is_set():
        for name, path in (("health", "/api/health"), ("jobs", "/api/benchmark/jobs?limit=20")):
            t = time.perf_counter()
            d.get(path)
            out[name].append((time.perf_counter() - t) * 1e3)
        time.sleep(0.005)


def vm_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--gb", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        template = toy_run(tmp_p)
        root = tmp_p / "root"
        results = root / "results"
        results.mkdir(parents=True)
        t = time.perf_counter()
        make_runs(template, results, args.runs, int(args.gb * 1e9 / args.runs))
        made = time.perf_counter() - t
        newest = sorted(p.name for p in results.iterdir())[-1]

        base = {"health": [], "jobs": []}
        d = Daemon(root)
        d.start()
        stop = threading.Event()
        th = threading.Thread(target=sample, args=(d, stop, base))
        th.start()
        time.sleep(10)
        stop.set()
        th.join()
        d.close()

        during = {"health": [], "jobs": []}
        d = Daemon(root, extra_args=("--keep-days", "30"))
        t = time.perf_counter()
        d.start()
        stop = threading.Event()
        th = threading.Thread(target=sample, args=(d, stop, during))
        th.start()
        while sum(1 for _ in os.scandir(results)) > 3:   # the newest run, .pins?, .trash
            time.sleep(0.2)
        took = time.perf_counter() - t
        stop.set()
        th.join()
        rss = vm_hwm(d.proc.pid)
        left = [p.name for p in results.iterdir() if not p.name.startswith(".")]
        d.close()
    print(f"{args.runs} runs, {args.gb:g} GB of sparse padding, made in {made:.1f} s; "
          f"left after the prune: {left} (newest {newest})")
    print("| measure | baseline p50 / p99 (ms) | during the prune p50 / p99 (ms) | ratio p99 |")
    print("|---|---:|---:|---:|")
    for name in ("health", "jobs"):
        b, g = base[name], during[name]
        print(f"| {name} ({len(b)} / {len(g)} requests) | {pct(b, .5):.2f} / {pct(b, .99):.2f} "
              f"| {pct(g, .5):.2f} / {pct(g, .99):.2f} | {pct(g, .99) / pct(b, .99):.2f} |")
    print(f"\nprune of {args.runs - 1} runs: {took:.1f} s (benchd start to the last one gone); "
          f"benchd peak RSS {rss:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

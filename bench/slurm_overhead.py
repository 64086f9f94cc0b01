"""Slurm executor overhead (issue 17), local vs Slurm side by side, per job:

  submit -> running   POST /api/benchmark/jobs -> the orchestrator's first output line is in
                      the job's log (it runs)
  end -> final        the orchestrator is let go (gate file created; it exits within a few
                      ms) -> GET shows the job's final record

Each figure is the median (and max) of --runs jobs, run one after another on a real benchd
(tests/support/daemon.py) with the fake orchestrator (a real process, real argv). With
--executor slurm, Slurm's scheduling cycle and benchd's poll interval (POLL_S) dominate.

    .venv/bin/python bench/slurm_overhead.py [--runs 5] [--slurm-conf PATH]

Without --slurm-conf it starts a single-node cluster with ../shared/slurm/slurm-up (root).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.daemon import Daemon, wait_until  # noqa: E402

SLURM = REPO.parent / "shared" / "slurm"
FINAL = ("completed", "failed", "cancelled", "unknown")


def measure(d: Daemon, runs: int) -> tuple[list[float], list[float]]:
    starts, ends = [], []
    for i in range(runs):
        gate = d.root / f"gate-{i}"
        d.set_spec(lines=1, wait_for_file=str(gate))
        t0 = time.monotonic()
        job = d.start_job(experiments=["gmst_era"])
        log = d.log_file(job["job_id"])
        wait_until(lambda: log.exists() and b"@@benchd-progress" in log.read_bytes(), 120,
                   0.002, "the orchestrator's first line")
        starts.append(time.monotonic() - t0)
        d.wait_job(job["job_id"], ("running",), timeout=120)   # benchd knows it, too
        t1 = time.monotonic()
        gate.touch()
        rec = wait_until(lambda: (r := d.job(job["job_id"]))["status"] in FINAL and r, 120,
                         0.005, "the final record")
        ends.append(time.monotonic() - t1)
        assert rec["status"] == "completed", rec
    return starts, ends


def row(name: str, xs: list[float]) -> str:
    return f"{name:<8} median {statistics.median(xs):7.3f} s   max {max(xs):7.3f} s"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--slurm-conf", type=Path, default=None)
    args = ap.parse_args()
    cluster = None
    if args.slurm_conf is None:
        cluster = tempfile.mkdtemp(prefix="benchd-slurm-bench-", dir="/tmp")
        machine = {k: v for k, v in os.environ.items()   # slurm-up sizes the node with
                   if k not in ("OMP_NUM_THREADS", "OMP_THREAD_LIMIT")}  # nproc, which obeys these
        out = subprocess.run([str(SLURM / "slurm-up"), cluster], check=True,
                             capture_output=True, text=True, env=machine).stdout
        args.slurm_conf = Path(out.strip().splitlines()[-1])
    os.environ["SLURM_CONF"] = str(args.slurm_conf)
    results = {}
    try:
        for name, extra in (("local", []), ("slurm", ["--executor", "slurm"])):
            with tempfile.TemporaryDirectory(prefix=f"sbench-{name}-") as tmp:
                d = Daemon(Path(tmp) / "root", extra_args=extra)
                try:
                    d.start(timeout=120)
                    results[name] = measure(d, args.runs)
                finally:
                    d.close()
    finally:
        if cluster is not None:
            subprocess.run([str(SLURM / "slurm-down"), cluster], capture_output=True)
            shutil.rmtree(cluster, ignore_errors=True)
    print(f"{args.runs} jobs each, one after another; load {os.getloadavg()[0]:.2f}")
    for i, what in enumerate(("submit -> orchestrator running", "job end -> final record")):
        print(what)
        for name in ("local", "slurm"):
            print("  " + row(name, results[name][i]))
        ratio = statistics.median(results["slurm"][i]) / statistics.median(results["local"][i])
        print(f"  slurm/local (medians): {ratio:.0f}x")


if __name__ == "__main__":
    main()

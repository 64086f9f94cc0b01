"""Preemption figures (issue 11): how long a priority-5 job waits for a running job to give
up its slot, at its experiment boundary (the default) or at once ("preempt": "now"), printed
as a table.

  preempt -> running   the urgent job's POST returned -> its orchestrator running (its
                       started_at), with one slot held by a real 3-experiment pipeline job
                       (n=--n, accuracy only) that is in the middle of its first experiment
  redone               what the preempted job does again when it resumes: nothing at a
                       boundary; with "now" the interrupted experiment, whose duration
                       when it ran again (manifest duration_s) is shown

    .venv/bin/python bench/preempt_figures.py [--runs 3] [--n 2000]

A boundary preemption waits for the rest of the current experiment (so it depends on how long
an experiment takes, here a few seconds); "now" costs SIGTERM, the orchestrator's exit, its
supervisor's exit record and one supervisor + orchestrator start.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.daemon import Daemon, wait_until  # noqa: E402

EXPERIMENTS = ["gmst_era", "equ_ecl", "precession"]
PIPELINE = [sys.executable, "-m", "pipeline"]


def one(mode: str, n: int) -> tuple[float, float | None]:
    """(seconds from the urgent POST to its orchestrator running, duration of the experiment
    the preempted job redoes, if any)."""
    with tempfile.TemporaryDirectory(prefix="pbench-") as tmp:
        d = Daemon(Path(tmp) / "root", orchestrator=PIPELINE)
        try:
            d.start()
            low = d.start_job(experiments=EXPERIMENTS, n=n, seed=7, no_perf=True)["job_id"]

            def mid_first() -> bool:
                prog = d.job(low).get("progress") or {}
                return prog.get("k") == 1 and prog.get("phase") in ("reference", "adapter",
                                                                    "accuracy")
            wait_until(mid_first, 120, 0.01, "the low job in its first experiment")
            body = {"experiments": ["gmst_era"], "n": 200, "seed": 7, "no_perf": True,
                    "priority": 5, "preempt": mode}
            r = d.post_json("/api/benchmark/jobs", body)
            t0 = time.time()
            assert r.status == 201, r.body
            urgent = r.json()["job_id"]
            rec = wait_until(lambda: (lambda j: j if j.get("started_at") else None)(
                d.job(urgent)), 300, 0.005, "the urgent job running")
            started = datetime.fromisoformat(rec["started_at"]).timestamp()
            final = d.wait_job(low, timeout=600)
            assert final["status"] == "completed", final
            redone = None
            if mode == "now":
                manifest = json.loads((d.root / final["run_dir"] / "manifest.json").read_bytes())
                redone = manifest["experiments"][EXPERIMENTS[0]]["duration_s"]
            return started - t0, redone
        finally:
            d.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n", type=int, default=2000)
    a = ap.parse_args()
    print(f"{'mode':<9} {'preempt -> running (s)':<32} redone")
    for mode in ("boundary", "now"):
        got = [one(mode, a.n) for _ in range(a.runs)]
        waits = [w for w, _ in got]
        redo = [r for _, r in got if r is not None]
        print(f"{mode:<9} median {statistics.median(waits):6.3f}  max {max(waits):6.3f}      "
              + (f"first experiment again ({statistics.median(redo):.1f} s)" if redo
                 else "nothing"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

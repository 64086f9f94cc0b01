#!/usr/bin/env python3
"""Do two back-to-back runs agree? Runs the real pipeline twice (all experiments by default,
`--n 1000`, real libraries) and prints, per experiment, both reference medians (ns/op), their
95 % CIs (when the results carry them), the ratio run2/run1 and whether the CIs overlap.

Target (issue 13): every reference ns/op within 5 % between the two runs, and within their CIs.

Usage:
  .venv/bin/python bench/timing_agreement.py [--n 1000] [--experiments all] [--root DIR]
        [-- extra pipeline options]
`--root DIR` runs the pipeline of another checkout (e.g. an export of the code before a change:
`git archive <rev> | tar -x -C /tmp/before`), with this interpreter and PYTHONPATH=DIR.
Exit 0 when every experiment meets the target, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AGREE = 0.05


def run_pipeline(root: Path, results: Path, n: int, experiments: str,
                 extra: list[str]) -> tuple[Path, float]:
    env = dict(os.environ)
    env.pop("PIPELINE_REGISTRY", None)
    env["PYTHONPATH"] = str(root)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "pipeline", "--results-dir", str(results), "--n",
                    str(n), "--experiments", experiments, *extra], cwd=root, env=env,
                   check=True, stdout=subprocess.DEVNULL, timeout=3600)
    wall = time.monotonic() - t0
    runs = sorted(d for d in results.iterdir() if d.is_dir() and not d.name.startswith("."))
    return runs[-1], wall


def reference_perf(run: Path) -> dict[str, dict]:
    """experiment -> the reference's perf block (plus its name) from a published run."""
    manifest = json.loads((run / "manifest.json").read_text())
    out = {}
    for exp, entry in manifest["experiments"].items():
        rec = json.loads((run / exp / f"{entry['reference']}.json").read_text())
        out[exp] = dict(rec.get("perf") or {}, library=entry["reference"])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--experiments", default="all")
    p.add_argument("--root", type=Path, default=ROOT, help="checkout whose pipeline to run")
    p.add_argument("extra", nargs="*", help="more pipeline options (after --)")
    a = p.parse_args()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        r1, w1 = run_pipeline(a.root, Path(d), a.n, a.experiments, a.extra)
        r2, w2 = run_pipeline(a.root, Path(d), a.n, a.experiments, a.extra)
        p1, p2 = reference_perf(r1), reference_perf(r2)
    load1 = os.getloadavg()
    print(f"root={a.root} n={a.n} cores={os.cpu_count()} run walls {w1:.1f} s, {w2:.1f} s; "
          f"load avg before {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, after "
          f"{load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f}")
    print("| experiment | reference | run 1 ns/op [95% CI] | run 2 ns/op [95% CI] | rounds | "
          "ratio 2/1 | within 5% | CIs overlap | CPU ns/op ratio 2/1 |")
    print("|---|---|---:|---:|---:|---:|---|---|---:|")
    ok = True

    def fmt(x: dict) -> str:
        if x.get("ci_low_ns") is None:
            return f"{x['median_ns']:,.1f} [–]"
        return f"{x['median_ns']:,.1f} [{x['ci_low_ns']:,.1f}, {x['ci_high_ns']:,.1f}]"
    for exp in p1:
        x, y = p1[exp], p2.get(exp)
        if not x or not y or "median_ns" not in x or "median_ns" not in y:
            print(f"| {exp} | – | – | – | – | – | no | – | – |")
            ok = False
            continue
        ratio = y["median_ns"] / x["median_ns"]
        close = abs(ratio - 1.0) <= AGREE
        if x.get("ci_low_ns") is None or y.get("ci_low_ns") is None:
            overlap = "no CI"
            good = close
        else:
            ov = x["ci_low_ns"] <= y["ci_high_ns"] and y["ci_low_ns"] <= x["ci_high_ns"]
            overlap = "yes" if ov else "no"
            good = close and ov
        ok &= good
        cpu = (f"{y['cpu_median_ns'] / x['cpu_median_ns']:.3f}"
               if x.get("cpu_median_ns") and y.get("cpu_median_ns") else "–")
        print(f"| {exp} | {x['library']} | {fmt(x)} | {fmt(y)} | {x['rounds']}/{y['rounds']} | "
              f"{ratio:.3f} | {'yes' if close else 'NO'} | {overlap} | {cpu} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

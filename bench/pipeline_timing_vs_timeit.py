#!/usr/bin/env python3
"""Is the pipeline's timing honest? Its reference (erfa) per-op time for gmst06 and pnm06a vs a
bare `timeit` loop of the same call, side by side in one run.

For each experiment, alternately (interleaved, so machine noise hits both alike):
  pipeline: a real worker process, `python -m pipeline.worker --adapter erfa ...`, whose
            perf.median_ns is exactly what results/<run>/<exp>/erfa.json reports;
  timeit:   a fresh process of this script that builds the same inputs and prepared object and
            runs timeit.Timer(lambda: adapter.compute(exp, prepared)).repeat(...) with timeit's
            own autorange (timeit disables gc too), median per-op ns.
The median over pairs of pipeline/timeit (each pipeline measurement divided by the timeit one
taken right after it, so both saw the same machine load) must be within ±15 %. Also shown,
paired the same way: the ratio of minima, and of process-CPU-time medians (the pipeline records CPU time per round;
timeit is re-run with timer=time.process_time) — the fair one when the machine is busy.
For context it also times the bare ERFA function alone (gmst06 / pnm06a), which is less work
than the adapter's call (the adapter also computes era00 / rotates the vectors).

Usage: .venv/bin/python bench/pipeline_timing_vs_timeit.py [--n 1000] [--pairs 3] [--rounds 7]
Exit 0 when every ratio is within the tolerance, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = (("gmst_era", "gmst06"), ("frame_rotation_bpn", "pnm06a"))
TOLERANCE = 0.15


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PIPELINE_REGISTRY", None)
    env["PYTHONPATH"] = str(ROOT)
    return env


def pipeline_ns(exp: str, n: int, seed: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "pipeline.worker", "--experiment", exp,
                        "--adapter", "erfa", "--n", str(n), "--seed", str(seed),
                        "--perf-rounds", str(rounds), "--out", d],
                       check=True, env=_env(), cwd=ROOT, timeout=600)
        res = json.loads((Path(d) / "result.json").read_text())
    if res["status"] != "ok":
        raise SystemExit(f"pipeline worker failed on {exp}: {res['reason']}")
    p = res["perf"]
    return {"median": p["median_ns"], "min": p["min_ns"], "cpu": p["cpu_median_ns"]}


def timeit_child(exp: str, fn: str, n: int, seed: int, rounds: int) -> None:
    """(In a fresh process) per-op median ns of the adapter call and of the bare ERFA call."""
    import erfa

    from pipeline.registry import ADAPTERS, EXPERIMENTS
    inputs = EXPERIMENTS[exp].generate_inputs(n, seed)
    adapter = ADAPTERS["erfa"]()
    prepared = adapter.prepare(exp, inputs)
    adapter.compute(exp, prepared)          # warm-up, as the worker does
    t = timeit.Timer(lambda: adapter.compute(exp, prepared))
    number, _ = t.autorange()
    runs = t.repeat(repeat=rounds, number=number)
    tc = timeit.Timer(lambda: adapter.compute(exp, prepared), timer=time.process_time)
    cpu = statistics.median(tc.repeat(repeat=rounds, number=number)) / number
    if fn == "gmst06":
        bare = timeit.Timer(lambda: erfa.gmst06(inputs["ut1_1"], inputs["ut1_2"],
                                                inputs["tt1"], inputs["tt2"]))
    else:
        bare = timeit.Timer(lambda: erfa.pnm06a(inputs["tt1"], inputs["tt2"]))
    bnumber, _ = bare.autorange()
    bcall = statistics.median(bare.repeat(repeat=rounds, number=bnumber)) / bnumber
    print(json.dumps({"median": statistics.median(runs) / number * 1e9 / n,
                      "min": min(runs) / number * 1e9 / n, "cpu": cpu * 1e9 / n,
                      "bare": bcall * 1e9 / n}))


def timeit_ns(exp: str, fn: str, n: int, seed: int, rounds: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", exp, fn, "--n", str(n), "--seed",
                          str(seed), "--rounds", str(rounds)], check=True, env=_env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--pairs", type=int, default=9, help="interleaved pipeline/timeit pairs")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds in each measurement")
    p.add_argument("--child", nargs=2, metavar=("EXPERIMENT", "FUNCTION"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        timeit_child(a.child[0], a.child[1], a.n, a.seed, a.rounds)
        return 0
    load = os.getloadavg()[0]
    print(f"n={a.n} seed={a.seed} pairs={a.pairs} rounds={a.rounds} load={load:.2f} "
          f"cores={os.cpu_count()}  (ns per case; medians over pairs)")
    print(f"{'experiment':<20} {'erfa fn':<8} {'pipeline':>10} {'timeit':>10} {'ratio':>7}"
          f" | {'min ratio':>9} {'cpu ratio':>9} {'bare fn':>10}  verdict (paired median ratio)")
    ok = True
    for exp, fn in CASES:
        pipe, tim = [], []
        for _ in range(a.pairs):
            pipe.append(pipeline_ns(exp, a.n, a.seed, a.rounds))
            tim.append(timeit_ns(exp, fn, a.n, a.seed, a.rounds))

        def med(xs: list[dict[str, float]], key: str) -> float:
            return statistics.median(x[key] for x in xs)

        def paired(ps: list[dict[str, float]], ts: list[dict[str, float]], key: str) -> float:
            return statistics.median(p[key] / t[key] for p, t in zip(ps, ts))
        # paired design: each pipeline measurement is divided by the timeit one right after
        # it (same machine conditions); the verdict is the median of those paired ratios
        ratio = statistics.median(p["median"] / t["median"] for p, t in zip(pipe, tim))
        good = abs(ratio - 1.0) <= TOLERANCE
        ok &= good
        print(f"{exp:<20} {fn:<8} {med(pipe, 'median'):>10.1f} {med(tim, 'median'):>10.1f} "
              f"{ratio:>7.3f} | {paired(pipe, tim, 'min'):>9.3f} "
              f"{paired(pipe, tim, 'cpu'):>9.3f} {med(tim, 'bare'):>10.1f}  "
              f"{'within' if good else 'OUTSIDE'} ±{TOLERANCE:.0%}")
        pr = ", ".join(f"{x['median']:.1f}" for x in pipe)
        tr = ", ".join(f"{x['median']:.1f}" for x in tim)
        print(f"{'':<29} runs: pipeline {pr}; timeit {tr}")
    after = os.getloadavg()[0]
    if max(load, after) > (os.cpu_count() or 1):
        print(f"note: load average {max(load, after):.1f} > {os.cpu_count()} cores during the run:"
              f" wall-clock ratios are noise-dominated; the cpu ratio (process CPU time) is the "
              f"fair comparison on a busy machine")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

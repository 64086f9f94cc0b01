#!/usr/bin/env python3
"""Is the pipeline's timing honest? Its reference (erfa) per-op time for gmst06 and pnm06a vs a
bare `timeit` loop of the same call, side by side in one run.

For each experiment, alternately (interleaved, so machine noise hits both alike):
  pipeline: a real worker process, `python -m pipeline.worker --adapter erfa ...`, whose
            perf.median_ns is exactly what results/<run>/<exp>/erfa.json reports;
  timeit:   a fresh process of this script that builds the same inputs and prepared object and
            runs timeit.Timer(lambda: adapter.compute(exp, prepared)).repeat(...) with timeit's
            own autorange (timeit disables gc too), median per-op ns.
The ratio pipeline/timeit of the medians of those medians must be within ±15 %.
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


def pipeline_ns(exp: str, n: int, seed: int, rounds: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "pipeline.worker", "--experiment", exp,
                        "--adapter", "erfa", "--n", str(n), "--seed", str(seed),
                        "--perf-rounds", str(rounds), "--out", d],
                       check=True, env=_env(), cwd=ROOT, timeout=600)
        res = json.loads((Path(d) / "result.json").read_text())
    if res["status"] != "ok":
        raise SystemExit(f"pipeline worker failed on {exp}: {res['reason']}")
    return float(res["perf"]["median_ns"])


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
    call = statistics.median(t.repeat(repeat=rounds, number=number)) / number
    if fn == "gmst06":
        bare = timeit.Timer(lambda: erfa.gmst06(inputs["ut1_1"], inputs["ut1_2"],
                                                inputs["tt1"], inputs["tt2"]))
    else:
        bare = timeit.Timer(lambda: erfa.pnm06a(inputs["tt1"], inputs["tt2"]))
    bnumber, _ = bare.autorange()
    bcall = statistics.median(bare.repeat(repeat=rounds, number=bnumber)) / bnumber
    print(json.dumps({"call_ns": call * 1e9 / n, "bare_ns": bcall * 1e9 / n}))


def timeit_ns(exp: str, fn: str, n: int, seed: int, rounds: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, __file__, "--child", exp, fn, "--n", str(n), "--seed",
                          str(seed), "--rounds", str(rounds)], check=True, env=_env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=600).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["call_ns"], r["bare_ns"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--pairs", type=int, default=3, help="interleaved pipeline/timeit pairs")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds in each measurement")
    p.add_argument("--child", nargs=2, metavar=("EXPERIMENT", "FUNCTION"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        timeit_child(a.child[0], a.child[1], a.n, a.seed, a.rounds)
        return 0
    print(f"n={a.n} seed={a.seed} pairs={a.pairs} rounds={a.rounds}  (ns per case, medians)")
    print(f"{'experiment':<20} {'erfa call':<8} {'pipeline':>10} {'timeit':>10} {'ratio':>7} "
          f"{'bare fn':>10}  verdict")
    ok = True
    for exp, fn in CASES:
        pipe, tim, bare = [], [], []
        for _ in range(a.pairs):
            pipe.append(pipeline_ns(exp, a.n, a.seed, a.rounds))
            c, b = timeit_ns(exp, fn, a.n, a.seed, a.rounds)
            tim.append(c)
            bare.append(b)
        pm, tm, bm = statistics.median(pipe), statistics.median(tim), statistics.median(bare)
        ratio = pm / tm
        good = abs(ratio - 1.0) <= TOLERANCE
        ok &= good
        print(f"{exp:<20} {fn:<8} {pm:>10.1f} {tm:>10.1f} {ratio:>7.3f} {bm:>10.1f}  "
              f"{'within' if good else 'OUTSIDE'} ±{TOLERANCE:.0%}")
        print(f"{'':<29} runs: pipeline {', '.join(f'{x:.1f}' for x in pipe)}; "
              f"timeit {', '.join(f'{x:.1f}' for x in tim)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

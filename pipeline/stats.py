"""Numbers from raw measurements: accuracy percentiles and per-operation timing statistics.

Pure functions over numpy arrays so they are tested without subprocesses or libraries.
"""
from __future__ import annotations

import math
import statistics

import numpy as np

from pipeline.schema import AccuracyStats, PerfStats, WorstCase

UNSTABLE_CV_PCT = 10.0     # a perf result with a larger round-to-round CV is flagged unstable
WORST_CASES = 5
QUANTILE_LEVELS = 101      # |error| quantiles at 0, 1, ..., 100 % kept for the report's ECDF


def _f(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def accuracy(errors: np.ndarray, indices: np.ndarray, inputs: dict[str, np.ndarray],
             unit: str) -> AccuracyStats:
    """Summarise per-case errors of the compared cases.

    `errors[i]` belongs to case `indices[i]` of `inputs`. Percentiles, mean and RMS are over
    finite errors; NaN and Inf are counted, and NaN/Inf cases rank first among the worst
    (a library that returns NaN is worse than any finite error)."""
    errors = np.asarray(errors, dtype=np.float64)
    indices = np.asarray(indices)
    nan = np.isnan(errors)
    inf = np.isinf(errors)
    fin = ~(nan | inf)
    e = np.abs(errors[fin])
    stats = AccuracyStats(unit=unit, compared=int(errors.size), finite=int(e.size),
                          nan_count=int(nan.sum()), inf_count=int(inf.sum()))
    if e.size:
        p50, p90, p95, p99 = np.percentile(e, [50, 90, 95, 99])
        stats.p50, stats.p90, stats.p95, stats.p99 = _f(p50), _f(p90), _f(p95), _f(p99)
        stats.max = _f(e.max())
        stats.mean = _f(e.mean())
        stats.rms = _f(np.sqrt(np.mean(e * e)))
        stats.quantiles = [float(q) for q in
                           np.percentile(e, np.linspace(0.0, 100.0, QUANTILE_LEVELS))]
    # worst: non-finite first (stable by case index), then largest finite errors
    rank = np.where(fin, np.abs(np.where(fin, errors, 0.0)), np.inf)
    order = np.lexsort((indices, -rank))[:WORST_CASES]
    worst = []
    for j in order:
        i = int(indices[j])
        worst.append(WorstCase(index=i, error=_f(abs(errors[j])) if fin[j] else None,
                               inputs={k: float(v[i]) for k, v in inputs.items()}))
    stats.worst = worst
    return stats


def timer_resolution_ns() -> float:
    """The perf_counter step actually observable here (max of declared and measured)."""
    import time
    declared = time.get_clock_info("perf_counter").resolution * 1e9
    smallest = math.inf
    for _ in range(200):
        a = time.perf_counter_ns()
        b = time.perf_counter_ns()
        while b == a:
            b = time.perf_counter_ns()
        smallest = min(smallest, b - a)
    return float(max(declared, smallest))


BUSY_WALL_OVER_CPU = 1.10  # a round whose wall time exceeds its CPU time by this waited/was preempted


def perf(round_ns: list[int], inner_repeats: int, ops_per_call: int, call_ns: float,
         resolution_ns: float, checksum: float,
         round_cpu_ns: list[int] | None = None) -> PerfStats:
    """Per-operation statistics from the durations of timed rounds.

    A round is `inner_repeats` calls of compute() over `ops_per_call` cases; the per-op time
    of a round is its duration / (inner_repeats * ops_per_call). The result is flagged
    invalid when one call is below the timer resolution ("too fast to measure") or the
    rounds disagree by more than UNSTABLE_CV_PCT ("unstable"). The statistics are wall-clock
    (as timeit); the process CPU time per round, when given, only explains instability: a
    round with much more wall than CPU time was preempted by other load (or waited on I/O)."""
    if not round_ns:
        raise ValueError("perf needs at least one timed round")
    ops = max(1, inner_repeats * max(1, ops_per_call))
    per_op = [r / ops for r in round_ns]
    mean = statistics.fmean(per_op)
    stdev = statistics.stdev(per_op) if len(per_op) > 1 else 0.0
    cv = 100.0 * stdev / mean if mean > 0 else 0.0
    warnings: list[str] = []
    if ops_per_call == 0:
        warnings.append("no case inside the domain: nothing was timed")
    if call_ns < resolution_ns:
        warnings.append(f"too fast to measure: one call takes {call_ns:.0f} ns, below the "
                        f"timer resolution {resolution_ns:.0f} ns")
    if cv > UNSTABLE_CV_PCT:
        warnings.append(f"unstable: CV {cv:.1f}% over {len(per_op)} rounds "
                        f"(> {UNSTABLE_CV_PCT:.0f}%)")
    cpu_median = None
    busy = 0
    if round_cpu_ns:
        cpu_median = statistics.median(c / ops for c in round_cpu_ns)
        busy = sum(1 for w, c in zip(round_ns, round_cpu_ns) if w > BUSY_WALL_OVER_CPU * c)
        if busy:   # most rounds disturbed: the median describes the machine, not the library
            kind = "machine busy" if 2 * busy > len(per_op) else "some rounds disturbed"
            warnings.append(f"{kind}: {busy} of {len(per_op)} rounds took > "
                            f"{BUSY_WALL_OVER_CPU:.2f}x their CPU time (preempted or waiting)")
    if len(per_op) < 3:
        warnings.append(f"only {len(per_op)} timed round(s): spread is not meaningful")
    return PerfStats(rounds=len(per_op), inner_repeats=inner_repeats, ops_per_call=ops_per_call,
                     median_ns=statistics.median(per_op), mean_ns=mean, stdev_ns=stdev,
                     min_ns=min(per_op), max_ns=max(per_op), cv_pct=cv, call_ns=float(call_ns),
                     timer_resolution_ns=float(resolution_ns),
                     valid=not any(w.startswith(("too fast", "unstable", "no case",
                                                 "machine busy"))
                                   for w in warnings),
                     warnings=warnings, checksum=float(checksum), cpu_median_ns=cpu_median,
                     busy_rounds=busy)

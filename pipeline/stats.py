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
CPU_OVER_WALL = 1.10       # CPU time above wall time by this: the library ran extra threads
CI_LEVEL = 0.95
CI_RESAMPLES = 9999
CI_SEED = 20261204         # fixed: the same samples always give the same CI
TARGET_CI_HALF_PCT = 2.0   # adaptive rounds stop once the CI half-width is below this % of median


def median_ci(samples: list[float], resamples: int = CI_RESAMPLES
              ) -> tuple[float | None, float | None]:
    """95 % bootstrap CI (percentile method, scipy.stats.bootstrap, fixed seed) of the median.

    The percentile method, because it keeps ~95 % coverage of a median down to 5 samples
    (measured in tests/pipeline/test_stats.py); BCa and basic under-cover there. Fewer than
    two samples have no CI: (None, None). Identical samples: a zero-width CI."""
    if len(samples) < 2:
        return None, None
    x = np.asarray(samples, dtype=np.float64)
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    from scipy.stats import bootstrap
    r = bootstrap((x,), np.median, confidence_level=CI_LEVEL, n_resamples=resamples,
                  method="percentile", vectorized=True, rng=np.random.default_rng(CI_SEED))
    lo, hi = r.confidence_interval
    return float(lo), float(hi)


def median_ci_numpy(samples: list[float], resamples: int = CI_RESAMPLES
                    ) -> tuple[float | None, float | None]:
    """median_ci, bit for bit, in numpy alone: the same resample indices (Generator.integers
    from the same seed), the same median per resample, the same linear (Hyndman-Fan 7)
    percentiles as scipy.stats.bootstrap/scipy.stats.quantile compute. Why a twin: a worker
    checks its stop rule after every round and importing scipy costs each worker ~0.6 s;
    the CI that is reported is median_ci's, computed once per run in the orchestrator.
    tests/pipeline/test_timing.py checks that both agree exactly."""
    if len(samples) < 2:
        return None, None
    x = np.asarray(samples, dtype=np.float64)
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(CI_SEED)
    idx = rng.integers(0, x.size, (resamples, x.size), dtype=np.int64)
    y = np.sort(np.median(x[idx], axis=-1))
    alpha = np.float64((1 - CI_LEVEL) / 2)
    p = np.array([alpha, 1 - alpha])
    jg = p * np.float64(y.size) + (1 - p)
    j, jp1, g = jg // 1 - 1, jg // 1, jg % 1
    g[j < 0] = 0
    j = np.clip(j, 0.0, y.size - 1).astype(np.int64)
    jp1 = np.clip(jp1, 0.0, y.size - 1).astype(np.int64)
    lo, hi = (1 - g) * y[j] + g * y[jp1]
    return float(lo), float(hi)


def ci_half_width_pct(samples: list[float], resamples: int = 2000) -> float:
    """Half-width of the median's CI as a % of the median (inf when not computable).
    scipy-free (median_ci_numpy): the worker's stop rule."""
    lo, hi = median_ci_numpy(samples, resamples)
    med = float(np.median(samples)) if samples else 0.0
    if lo is None or hi is None or med <= 0:
        return math.inf
    return 50.0 * (hi - lo) / med


def perf(round_ns: list[int], inner_repeats: int, ops_per_call: int, call_ns: float,
         resolution_ns: float, checksum: float,
         round_cpu_ns: list[int] | None = None, harness_ns: float | None = None,
         stop_reason: str | None = None, with_ci: bool = True) -> PerfStats:
    """Per-operation statistics from the durations of timed rounds.

    A round is `inner_repeats` calls of compute() over `ops_per_call` cases; the per-op time
    of a round is its duration / (inner_repeats * ops_per_call). Every round's per-op time is
    kept (samples_ns); the median carries a 95 % bootstrap CI. The result is flagged
    invalid when one call is below the timer resolution ("too fast to measure"), the
    rounds disagree by more than UNSTABLE_CV_PCT ("unstable"), other load preempted most
    rounds ("machine busy": wall > 1.1x CPU), or the library used more CPU than wall time
    ("threaded": CPU > 1.1x wall, the figure is not single-core work). The statistics are
    wall-clock (as timeit); CPU time is reported beside them. `with_ci=False` leaves the CI
    out (None): a worker returns its samples and the orchestrator adds the CI (add_median_ci),
    so scipy is imported once per run, not once per worker."""
    if not round_ns:
        raise ValueError("perf needs at least one timed round")
    ops = max(1, inner_repeats * max(1, ops_per_call))
    per_op = [r / ops for r in round_ns]
    mean = statistics.fmean(per_op)
    stdev = statistics.stdev(per_op) if len(per_op) > 1 else 0.0
    cv = 100.0 * stdev / mean if mean > 0 else 0.0
    median = statistics.median(per_op)
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
    cpu_ratio = None
    cpu_samples: list[float] = []
    busy = 0
    if round_cpu_ns:
        cpu_samples = [c / ops for c in round_cpu_ns]
        cpu_median = statistics.median(cpu_samples)
        cpu_ratio = cpu_median / median if median > 0 else None
        busy = sum(1 for w, c in zip(round_ns, round_cpu_ns) if w > BUSY_WALL_OVER_CPU * c)
        if busy:   # most rounds disturbed: the median describes the machine, not the library
            kind = "machine busy" if 2 * busy > len(per_op) else "some rounds disturbed"
            warnings.append(f"{kind}: {busy} of {len(per_op)} rounds took > "
                            f"{BUSY_WALL_OVER_CPU:.2f}x their CPU time (preempted or waiting)")
        if cpu_ratio is not None and cpu_ratio > CPU_OVER_WALL:
            warnings.append(f"threaded: CPU time {cpu_ratio:.2f}x wall time (> "
                            f"{CPU_OVER_WALL:.2f}x): the library ran on more than one core, "
                            f"so its wall time is not comparable")
    if len(per_op) < 3:
        warnings.append(f"only {len(per_op)} timed round(s): spread is not meaningful")
    lo, hi = median_ci(per_op) if with_ci else (None, None)
    return PerfStats(rounds=len(per_op), inner_repeats=inner_repeats, ops_per_call=ops_per_call,
                     median_ns=median, mean_ns=mean, stdev_ns=stdev,
                     min_ns=min(per_op), max_ns=max(per_op), cv_pct=cv, call_ns=float(call_ns),
                     timer_resolution_ns=float(resolution_ns),
                     valid=not any(w.startswith(("too fast", "unstable", "no case",
                                                 "machine busy", "threaded"))
                                   for w in warnings),
                     warnings=warnings, checksum=float(checksum), cpu_median_ns=cpu_median,
                     busy_rounds=busy, samples_ns=per_op, ci_low_ns=lo, ci_high_ns=hi,
                     cpu_samples_ns=cpu_samples, cpu_over_wall=cpu_ratio,
                     harness_ns=harness_ns, stop_reason=stop_reason)


def add_median_ci(p: PerfStats) -> PerfStats:
    """Set p's ci_low_ns/ci_high_ns: median_ci of its samples_ns (the per-round ns/op a
    worker returns), as perf() computed it in the worker before. Returns p."""
    p.ci_low_ns, p.ci_high_ns = median_ci(p.samples_ns)
    return p

"""One (adapter, experiment) measurement in its own process: `python -m pipeline.worker ...`.

Why a process each: a library's imports, caches, warning filters and crashes (siderust panics,
C code segfaults, skyfield's memory peak) must not leak into the next library's numbers or
take the run down. The worker regenerates the inputs from (experiment, n, seed) instead of
receiving them, so nothing but a few small arguments crosses the process boundary inbound.

Out (in --out DIR): outputs.npy (n, k) float64 with NaN rows outside the adapter's domain,
mask.npy (n,) bool, result.json (schema.WorkerResult). Exit 0 whenever result.json was written,
even for a failed or skipped library; anything else means the worker itself died.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import math
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Callable

from pipeline import threads

threads.pin_missing()     # before numpy is imported: BLAS/OpenMP read these once, at load

import numpy as np  # noqa: E402

from pipeline import schema, stats  # noqa: E402
from pipeline.adapters import common  # noqa: E402
from pipeline.atomicio import write_bytes_atomic  # noqa: E402

REGISTRY_ENV = "PIPELINE_REGISTRY"   # module providing EXPERIMENTS/ADAPTERS/candidates (tests)
DEFAULT_REGISTRY = "pipeline.registry"
MIN_ROUND_NS = 25_000_000            # a timed round lasts at least ~25 ms
# Warm-up: calls until ~300 ms were spent (at least one). Measured (bench/pipeline_timing_vs_
# timeit.py, erfa gmst06 n=1000, 8 interleaved runs): after 50 ms of warm-up the rounds were
# still ~15 % slower than timeit's steady state, after 200-400 ms within ~3-5 %.
WARMUP_NS = 300_000_000
MAX_INNER = 1_000_000


def load_registry() -> ModuleType:
    """The experiment/adapter registry: pipeline.registry, or the module named by
    $PIPELINE_REGISTRY (tests use a small registry of toy libraries through it)."""
    return importlib.import_module(os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY)


HARNESS_WARMUP_NS = 50_000_000       # the no-op loop is steady much sooner than a library
HARNESS_ROUNDS = 3


def measure(call: Callable[[], np.ndarray], rounds: int, resolution_ns: float,
            ops_per_call: int, max_perf_s: float | None = None,
            harness_call: Callable[[], np.ndarray] | None = None,
            warmup_ns: int = WARMUP_NS) -> schema.PerfStats:
    """Warm up, then timed rounds of `call` with gc disabled.

    `rounds` rounds always run. With `max_perf_s`, rounds are then added until the 95 % CI
    of the median is narrower than +-stats.TARGET_CI_HALF_PCT of it ("precision"), or the
    timed rounds have taken `max_perf_s` seconds ("time cap"). Inner repeats are scaled from
    the warm-up so that a round lasts >= MIN_ROUND_NS; each call's output is consumed (one
    element folded into a checksum inside the timed loop, a full nansum outside it) so no
    call's work can be skipped. `harness_call`, a no-op standing in for `call`, is timed by
    the same loop afterwards: its per-op time is the harness overhead (PerfStats.harness_ns).
    The median's CI is left to the orchestrator (stats.add_median_ci): no scipy in workers."""
    clock = time.perf_counter_ns
    sink = 0.0
    gc_was_enabled = gc.isenabled()
    gc.disable()   # no gc.collect() first: measured ~5 % slower rounds after it (timeit has none)
    try:
        warm: list[int] = []
        started = clock()
        while True:
            t0 = clock()
            sink += call().item(0)
            warm.append(clock() - t0)
            if clock() - started >= warmup_ns or len(warm) >= 10_000:
                break
        warm.sort()
        call_ns = float(warm[len(warm) // 2])
        inner = int(min(MAX_INNER, max(1, math.ceil(MIN_ROUND_NS / max(call_ns, 1.0)))))
        cpu = time.process_time_ns
        round_ns: list[int] = []
        round_cpu: list[int] = []
        ops = inner * max(1, ops_per_call)
        stop = "min rounds"
        timed_from = clock()
        while True:
            c0 = cpu()
            t0 = clock()
            for _ in range(inner - 1):
                # consume and drop at once: no output outlives its call, as under timeit (a
                # kept array would change the allocator's reuse and cost ~10 % on small calls)
                sink += call().item(0)
            out = call()
            sink += out.item(0)
            round_ns.append(clock() - t0)
            round_cpu.append(cpu() - c0)
            sink += float(np.nansum(out))
            if len(round_ns) < rounds:
                continue
            if max_perf_s is None:
                break
            if (clock() - timed_from) / 1e9 >= max_perf_s:
                stop = "time cap"
                break
            if stats.ci_half_width_pct([r / ops for r in round_ns]) < stats.TARGET_CI_HALF_PCT:
                stop = "precision"
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    harness = None
    if harness_call is not None:
        h = measure(harness_call, HARNESS_ROUNDS, resolution_ns, ops_per_call,
                    warmup_ns=HARNESS_WARMUP_NS)
        harness = h.median_ns
    checksum = sink if math.isfinite(sink) else 0.0
    return stats.perf(round_ns, inner, ops_per_call, call_ns, resolution_ns, checksum,
                      round_cpu, harness_ns=harness, stop_reason=stop, with_ci=False)


def harness_noop(out: np.ndarray, loops: list[tuple[int, int]]) -> Callable[[], np.ndarray]:
    """A call doing everything the harness does around a library call but no library work:
    returns a ready output (the timing loop's own cost) after running the same per-case
    loops (pipeline.adapters.common.loop_rows, with a row that returns a constant) that the
    adapter's call ran, so a per-case (L) adapter's overhead includes its loop."""
    rows = [(n, k, (0.0,) * k) for n, k in loops]

    def noop() -> np.ndarray:
        for n, k, row in rows:
            common.loop_rows(n, k, lambda _i, r=row: r)
        return out
    return noop


def _fail_reason(exc: BaseException) -> str:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    tail = "".join(tb[-3:]).strip()
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}\n{tail}"[:4000]


def run(experiment: str, adapter_name: str, n: int, seed: int, out_dir: Path,
        perf_rounds: int, no_perf: bool,
        max_perf_s: float | None = None) -> schema.WorkerResult:
    """Measure one adapter on one experiment; never raises for the library's own failures."""
    from pipeline.adapters.base import AdapterUnavailable

    res = schema.WorkerResult(experiment=experiment, adapter=adapter_name, status=schema.LIB_FAILED)
    try:
        reg = load_registry()
        exp = reg.EXPERIMENTS[experiment]
        cls = reg.ADAPTERS[adapter_name]
        res.model = cls.models.get(experiment)
        if not cls.supports(experiment):
            res.status, res.reason = schema.LIB_SKIPPED, f"{adapter_name} does not support {experiment}"
            return res
        adapter = cls()
        try:
            adapter.check_available()
        except AdapterUnavailable as e:
            res.status, res.reason = schema.LIB_SKIPPED, f"unavailable: {e}"
            return res
        try:
            res.version = adapter.version()
        except Exception as e:  # a missing distribution must not hide the measurement
            res.warnings.append(f"version unknown: {type(e).__name__}: {e}")

        inputs = exp.generate_inputs(n, seed)
        mask = np.asarray(adapter.domain(experiment, inputs))
        if mask.dtype != bool or mask.shape != (n,):
            raise ValueError(f"domain() must return a bool array of shape ({n},), "
                             f"got {mask.dtype} {mask.shape}")
        inside = int(mask.sum())
        sub = {k: v[mask] for k, v in inputs.items()}
        prepared = adapter.prepare(experiment, sub)
        k = len(exp.output_columns)

        def call() -> np.ndarray:
            return adapter.compute(experiment, prepared)

        t0 = time.perf_counter()
        # nothing inside the domain: nothing to compute (and no library sees an empty array)
        with common.recording_loops() as loops:
            out = np.asarray(call(), dtype=np.float64) if inside else np.empty((0, k))
        res.compute_s = time.perf_counter() - t0
        if out.shape != (inside, k):
            raise ValueError(f"compute() returned shape {out.shape}, expected ({inside}, {k}) "
                             f"for columns {', '.join(exp.output_columns)}")
        full = np.full((n, k), np.nan)
        full[mask] = out
        np.save(out_dir / "outputs.npy", full)
        np.save(out_dir / "mask.npy", mask)
        bad_rows = int((~np.isfinite(out)).any(axis=1).sum())
        res.domain = schema.DomainCounts(total=n, in_domain=inside, out_of_domain=n - inside,
                                         failed=bad_rows)
        if not no_perf and inside > 0:
            res.perf = measure(call, perf_rounds, stats.timer_resolution_ns(), inside,
                               max_perf_s=max_perf_s,
                               harness_call=harness_noop(out.copy(), loops))
        elif not no_perf:
            res.warnings.append("no case inside the domain: not timed")
        res.status, res.reason = schema.LIB_OK, None
    except AdapterUnavailable as e:   # raised late (e.g. by prepare): still a skip
        res.status, res.reason = schema.LIB_SKIPPED, f"unavailable: {e}"
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:        # pyo3 PanicException is a BaseException
        res.status, res.reason = schema.LIB_FAILED, _fail_reason(e)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.worker",
                                description="Measure one adapter on one experiment (internal).")
    p.add_argument("--experiment", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--perf-rounds", type=int, default=5)
    p.add_argument("--no-perf", action="store_true")
    p.add_argument("--max-perf-seconds", type=float, default=None,
                   help="add rounds until the median's CI is within 2%% or this many seconds "
                        "of timed rounds (default: exactly --perf-rounds rounds)")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    res = run(a.experiment, a.adapter, a.n, a.seed, a.out, a.perf_rounds, a.no_perf,
              a.max_perf_seconds)
    res.peak_rss_kb = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    write_bytes_atomic(a.out / "result.json", schema.encode(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Thread counts of the numeric runtimes (BLAS, OpenMP, numexpr) in every worker.

Why: an unpinned OpenBLAS runs on every core, so a library's wall time shrinks with the
machine's core count and its CPU time exceeds its wall time (skyfield measured 2x CPU over
wall on 2 cores): a figure that is not one library's single-core work. The counts must be in
the environment before numpy is imported; the orchestrator puts them in each worker's
environment, and the worker sets any that are missing before its own numpy import.

Stdlib only: imported before numpy.
"""
from __future__ import annotations

import os
from typing import Mapping, MutableMapping

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMEXPR_NUM_THREADS")
JOB_CPUS_ENV = "BENCHD_JOB_CPUS"   # the job's CPU count (set by whoever isolates the job)
DEFAULT_THREADS = 1


def job_threads(environ: Mapping[str, str] = os.environ) -> int:
    """Threads per worker: $BENCHD_JOB_CPUS when set (an integer >= 1), else 1.
    A bad value raises ValueError naming the variable and the value."""
    raw = environ.get(JOB_CPUS_ENV, "").strip()
    if not raw:
        return DEFAULT_THREADS
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"{JOB_CPUS_ENV} must be an integer >= 1, got {raw!r}")
    return count


def thread_env(count: int) -> dict[str, str]:
    """The environment entries that fix every runtime's thread count to `count`."""
    return {name: str(count) for name in THREAD_VARS}


def pin_missing(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set each thread variable not already set (a worker run by hand gets the same default);
    call before numpy is imported. A bad $BENCHD_JOB_CPUS falls back to 1 here: the
    orchestrator has already refused it."""
    try:
        count = job_threads(environ)
    except ValueError:
        count = DEFAULT_THREADS
    for name, value in thread_env(count).items():
        environ.setdefault(name, value)

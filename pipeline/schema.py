"""The one definition of every results file on disk (msgspec Structs), versioned.

Written by the orchestrator and its workers, read by pipeline.loader (and so by benchd).
Cheap to import (msgspec + stdlib): benchd lists runs without importing numpy.
Floats that may be undefined (no comparable case, all NaN) are `float | None`: JSON has no NaN.
Bump SCHEMA_VERSION when a field changes meaning; readers accept older versions they know.
"""
from __future__ import annotations

import msgspec

SCHEMA_VERSION = 1

# Run / experiment / library outcome vocabulary (defined once, used everywhere).
RUN_RUNNING = "running"          # staging, an orchestrator is (or was) working on it
RUN_INTERRUPTED = "interrupted"  # staging, stopped by a signal; `--resume <run_id>` finishes it
RUN_FAILED = "failed"            # staging, stopped by an error before publishing
RUN_COMPLETE = "complete"        # published under results/<run_id>/
RUN_STATUSES = (RUN_RUNNING, RUN_INTERRUPTED, RUN_FAILED, RUN_COMPLETE)

EXP_DONE = "done"                # reference ran; per-library files and summary.md written
EXP_FAILED = "failed"            # the reference failed: candidates could not be compared

LIB_OK = "ok"
LIB_FAILED = "failed"            # crashed, panicked, timed out, raised, bad output shape
LIB_SKIPPED = "skipped"          # AdapterUnavailable: the library cannot run on this machine
LIB_STATUSES = (LIB_OK, LIB_FAILED, LIB_SKIPPED)

ROLE_REFERENCE = "reference"
ROLE_CANDIDATE = "candidate"


class RunConfigRecord(msgspec.Struct, forbid_unknown_fields=True):
    """pipeline.catalog.RunConfig as stored in the manifest (resume reuses it verbatim)."""
    experiments: list[str]
    n: int
    seed: int
    perf_rounds: int
    no_perf: bool
    ci: bool
    worker_timeout_s: float
    max_perf_seconds: float | None = None  # cap on one library's timed rounds (None: before it)


class Metadata(msgspec.Struct):
    """Where and with what a run was measured; collected once per run."""
    utc_time: str
    hostname: str
    cpu_model: str
    cores: int
    os: str
    python: str
    numpy: str
    git_sha: str | None
    git_dirty: bool | None
    adapter_versions: dict[str, str]      # adapter name -> library version or "unavailable: ..."
    seed: int
    argv: list[str]
    load_avg: list[float] = []            # 1/5/15-min load at the start: was the machine busy?
    # Added with issue 13 (machine fingerprint and thread settings; defaults keep old runs):
    load_avg_end: list[float] = []        # 1/5/15-min load when the run finished
    nproc: int | None = None              # CPUs this process may run on (sched_getaffinity)
    cgroup_cpu_max: str | None = None     # /sys/fs/cgroup/cpu.max ("max 100000" = no quota)
    cpu_governors: dict[str, str] = {}    # cpuN -> scaling_governor, where cpufreq exists
    cpu_cur_freq_khz: dict[str, int] = {} # cpuN -> scaling_cur_freq at the start
    thread_env: dict[str, str] = {}       # OMP/OPENBLAS/MKL/NUMEXPR_NUM_THREADS given to workers
    # Added with issue 12 (isolation): where the run was pinned and what it cost
    cpuset: list[int] = []                # CPUs it may run on (sched_getaffinity; benchd pins)
    cpu_time_s: float | None = None       # user+system CPU of the orchestrator and its workers
    peak_rss_bytes: int | None = None     # largest peak RSS among them (ru_maxrss)


class ExperimentEntry(msgspec.Struct):
    status: str                           # EXP_DONE | EXP_FAILED
    reference: str
    libraries: dict[str, str]             # library -> LIB_* status
    finished_at: str
    duration_s: float
    reason: str | None = None


# Regression verdicts (pipeline.compare): a row, a report, a published run's check.
VERDICT_OK = "ok"                        # compared, nothing got significantly worse
VERDICT_REGRESSION = "regression"        # at least one row regressed (speed, error or status)
VERDICT_NO_BASELINE = "no_baseline"      # no earlier comparable run to compare with
VERDICT_NOT_CHECKED = "not_checked"      # the check itself failed (reason says why)
VERDICTS = (VERDICT_OK, VERDICT_REGRESSION, VERDICT_NO_BASELINE, VERDICT_NOT_CHECKED)
# Why a compare row counts as a regression (CompareRow.regressions)
REGRESSED_SPEED = "speed"                # ratio > threshold and significant
REGRESSED_P99 = "p99"                    # p99 error grew beyond the error tolerance
REGRESSED_MAX = "max"                    # max error grew beyond the error tolerance
REGRESSED_NONFINITE = "nonfinite"        # more NaN/Inf errors than before
REGRESSED_STATUS = "status"              # ok before, failed now
# How a speed change's significance was decided (CompareRow.test)
TEST_MANNWHITNEYU = "mannwhitneyu"       # Mann-Whitney U over the round samples, p < alpha
TEST_CI99 = "ci99"                       # too few rounds for U to reach alpha: 99 % CI of ratio
NO_SAMPLES_NOTE = "no samples: ratio of medians only, no significance"


class CompareRow(msgspec.Struct):
    """One experiment x library present in both runs (pipeline.compare)."""
    experiment: str
    library: str
    role: str
    base_status: str
    head_status: str
    base_version: str | None = None
    head_version: str | None = None
    base_median_ns: float | None = None
    head_median_ns: float | None = None
    ratio: float | None = None              # head / base median ns/op (> 1: slower)
    ratio_ci_low: float | None = None       # 95 % bootstrap CI of the ratio of medians
    ratio_ci_high: float | None = None
    base_rounds: int = 0                    # round samples stored (0: a run without samples)
    head_rounds: int = 0
    p_value: float | None = None            # Mann-Whitney U, two-sided
    test: str | None = None                 # TEST_* that decided `significant`, None: none could
    significant: bool = False
    unit: str | None = None                 # of the error columns
    base_p99: float | None = None
    head_p99: float | None = None
    base_max: float | None = None
    head_max: float | None = None
    base_nonfinite: int | None = None       # NaN + Inf errors
    head_nonfinite: int | None = None
    regressions: list[str] = []             # REGRESSED_* reasons; empty: not a regression
    improved: bool = False                  # significantly faster beyond the threshold
    notes: list[str] = []


class Difference(msgspec.Struct):
    """A field that differs between the two runs (config, environment, adapter version)."""
    field: str
    base: str
    head: str


class CompareReport(msgspec.Struct):
    """Body of GET /api/results/compare and `benchctl compare --json`."""
    base_run_id: str
    head_run_id: str
    threshold: float                        # speed ratio beyond which a significant change counts
    error_tolerance: float                  # p99/max error growth factor that counts
    alpha: float                            # significance level (asv's 0.002)
    verdict: str                            # VERDICT_OK | VERDICT_REGRESSION
    rows: list[CompareRow] = []
    only_in_base: list[str] = []            # "experiment/library" present in one run only
    only_in_head: list[str] = []
    config: list[Difference] = []           # n, seed, perf rounds...: what makes runs comparable
    environment: list[Difference] = []      # CPU, Python, numpy, BLAS, threads, load (Metadata)
    notes: list[str] = []
    schema_version: int = SCHEMA_VERSION


class RegressionCheck(msgspec.Struct):
    """Manifest.regression: the automatic check made just before publishing (never redone)."""
    verdict: str                            # one of VERDICTS
    base_run_id: str | None = None          # the newest earlier comparable published run
    threshold: float | None = None
    error_tolerance: float | None = None
    rows: list[CompareRow] = []             # the regressed rows only
    reason: str | None = None               # why not_checked / no_baseline


class Manifest(msgspec.Struct):
    """results/<run_id>/manifest.json (and the staging checkpoint while running)."""
    run_id: str
    status: str                           # one of RUN_STATUSES
    created_at: str                       # UTC ISO-8601
    config: RunConfigRecord
    metadata: Metadata
    experiments: dict[str, ExperimentEntry] = {}   # finished experiments, in catalog order
    published_at: str | None = None
    updated_at: str | None = None
    reason: str | None = None             # why it is interrupted/failed
    orchestrator_pid: int | None = None
    resumed_at: list[str] = []            # UTC times of each --resume
    regression: RegressionCheck | None = None  # verdict against the previous comparable run
    schema_version: int = SCHEMA_VERSION


class DomainCounts(msgspec.Struct):
    total: int                            # cases generated
    in_domain: int                        # inside the adapter's domain (computed)
    out_of_domain: int                    # outside it: counted, never computed
    failed: int                           # in domain but the library returned a NaN/Inf row


class PerfStats(msgspec.Struct):
    """Per-operation (per input case) timing of compute(prepared), gc disabled."""
    rounds: int
    inner_repeats: int                    # calls per round (auto-scaled so a round >= ~25 ms)
    ops_per_call: int                     # in-domain cases per call
    median_ns: float
    mean_ns: float
    stdev_ns: float
    min_ns: float
    max_ns: float
    cv_pct: float
    call_ns: float                        # median duration of one compute() call
    timer_resolution_ns: float
    valid: bool                           # False when too fast to measure or unstable
    warnings: list[str] = []
    checksum: float = 0.0                 # outputs consumed by the timed loop
    cpu_median_ns: float | None = None    # median over rounds of process CPU time per op
    busy_rounds: int = 0                  # rounds whose wall time exceeded CPU time by > 10 %
    # Added with issue 13 (defaults keep older results loadable):
    samples_ns: list[float] = []          # every timed round's ns/op, in round order
    ci_low_ns: float | None = None        # 95 % bootstrap CI of median_ns (seeded: same
    ci_high_ns: float | None = None       # samples -> same CI); None with < 2 rounds
    cpu_samples_ns: list[float] = []      # every round's process CPU ns/op, in round order
    cpu_over_wall: float | None = None    # cpu_median_ns / median_ns; > 1.10 = extra threads
    harness_ns: float | None = None       # per-op cost of the same timing loop (and per-case
                                          # loop for L adapters) around a no-op call; shown
                                          # beside median_ns, never subtracted from it
    stop_reason: str | None = None        # why rounds stopped: "precision" | "time cap" |
                                          # "min rounds" (no adaptive rounds asked)


class WorstCase(msgspec.Struct):
    index: int                            # case index in the generated inputs
    error: float | None                   # None when the error is NaN (shown first)
    inputs: dict[str, float]


class AccuracyStats(msgspec.Struct):
    unit: str
    compared: int                         # cases in both the reference's and this domain
    finite: int                           # of those, with a finite error
    nan_count: int
    inf_count: int
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None
    rms: float | None = None
    worst: list[WorstCase] = []
    # |error| at the levels 0, 1, ..., 100 % (QUANTILE_LEVELS) over the finite errors: what
    # report.html draws the error distribution from (the per-case errors are not kept)
    quantiles: list[float] | None = None


class WorkerResult(msgspec.Struct):
    """What a worker subprocess reports to the orchestrator (work/<exp>/<lib>/result.json).
    Outputs travel beside it as outputs.npy (n, k) with NaN rows outside the domain, mask.npy."""
    experiment: str
    adapter: str
    status: str                           # LIB_*
    reason: str | None = None
    version: str | None = None
    model: str | None = None
    domain: DomainCounts | None = None
    perf: PerfStats | None = None
    peak_rss_kb: int | None = None
    compute_s: float | None = None        # the untimed accuracy call, wall seconds
    warnings: list[str] = []
    log_tail: str | None = None           # set by the orchestrator: last lines the worker printed


class LibraryResult(msgspec.Struct):
    """results/<run_id>/<experiment>/<library>.json."""
    run_id: str
    experiment: str
    library: str
    role: str                             # ROLE_REFERENCE | ROLE_CANDIDATE
    status: str                           # LIB_*
    reference: str
    reason: str | None = None
    version: str | None = None
    model: str | None = None
    n: int = 0
    seed: int = 0
    domain: DomainCounts | None = None
    accuracy: AccuracyStats | None = None  # None for the reference itself
    perf: PerfStats | None = None
    speed_ratio: float | None = None      # this median ns / reference median ns (>1 = slower)
    peak_rss_kb: int | None = None
    worker_s: float | None = None         # worker wall time including imports
    warnings: list[str] = []
    log_tail: str | None = None           # last lines the worker printed (library warnings)
    legacy: bool = False                  # converted from a pre-manifest YYYY-MM-DD record
    schema_version: int = SCHEMA_VERSION


class LegacyRecord(msgspec.Struct):
    """Older results/YYYY-MM-DD/<experiment>/<library>.json (before run ids and manifests).
    Documented in README "Results layout"; read-only."""
    library: str
    experiment: str
    n: int
    unit: str
    version: str | None = None
    seed: int | None = None
    reference: str | None = None
    median_error: float | None = None
    p99_error: float | None = None
    max_error: float | None = None
    ns_per_op: float | None = None
    status: str = LIB_OK
    reason: str | None = None


class RunSummary(msgspec.Struct):
    """One line of a run listing (loader.list_runs), newest first."""
    run_id: str
    layout: str                           # "v1" (manifest) | "legacy" (YYYY-MM-DD)
    created_at: str | None
    status: str
    experiments: list[str]
    libraries: int                        # library result files found
    n: int | None = None
    seed: int | None = None
    failed_experiments: list[str] = []
    pinned: bool = False                  # results/.pins/<run_id>.json: never pruned
    pin_note: str | None = None
    archived: bool = False                # compressed into results/.archive/ (restorable)
    regression: str | None = None         # Manifest.regression.verdict (None: never checked)


class Pin(msgspec.Struct, omit_defaults=True):
    """results/.pins/<run_id>.json: this run is kept whatever the retention policy says."""
    run_id: str
    pinned_by_uid: int
    pinned_by: str
    pinned_at: str                        # UTC ISO-8601
    note: str | None = None
    schema_version: int = SCHEMA_VERSION


class RunList(msgspec.Struct):
    """Body of benchd's GET /api/results: published runs, newest first."""
    runs: list[RunSummary]
    next: str | None = None     # `before` cursor of the next (older) page; null: the last


class StagedRunSummary(msgspec.Struct):
    """One unpublished run in results/.staging (pipeline.staged.list_staged), newest first."""
    run_id: str
    status: str                           # running | interrupted | failed (manifest status)
    created_at: str
    updated_at: str | None
    reason: str | None                    # why it stopped, from the manifest
    experiments: list[str]                # the run's configured experiments, in order
    done: list[str]                       # those already checkpointed (kept by a resume)
    n: int
    seed: int
    in_use: bool                          # an orchestrator holds its lock right now
    resumable: bool                       # not in use: `--resume RUN_ID` would start


class StagedRunList(msgspec.Struct):
    """Body of benchd's GET /api/results/staged."""
    runs: list[StagedRunSummary]


class AdapterModel(msgspec.Struct):
    name: str                             # adapter (library) name
    model: str                            # the model it implements for this experiment


class ExperimentInfo(msgspec.Struct):
    """One experiment as pipeline.registry.describe() tells it (benchd's GET /api/experiments
    is a list of these, in catalog order)."""
    experiment: str
    title: str
    reference: AdapterModel
    unit: str                             # unit of the accuracy error (mas, arcsec, rad)
    perf_contract: str                    # what every timed loop computes, in words
    adapters: list[AdapterModel]          # the candidates (the reference excluded)


class DiscardedRun(msgspec.Struct):
    """Body of benchd's DELETE /api/results/staged/{run}: the run as it was just before."""
    run_id: str
    run: StagedRunSummary | None          # None when its manifest was unreadable


class ExperimentDetail(msgspec.Struct):
    name: str
    libraries: dict[str, LibraryResult]
    summary_md: str | None = None
    status: str | None = None


class RunDetail(msgspec.Struct):
    """Everything about one published run (loader.load_run)."""
    run_id: str
    layout: str
    manifest: Manifest | None
    experiments: dict[str, ExperimentDetail]
    warnings: list[str] = []              # files skipped as malformed


def encode(obj: msgspec.Struct) -> bytes:
    """Stable pretty-ish JSON for files people may read."""
    return msgspec.json.format(msgspec.json.encode(obj), indent=2) + b"\n"


class TrendPoint(msgspec.Struct):
    """One run's figures for one experiment x library (pipeline.trend)."""
    run_id: str
    created_at: str | None
    status: str                             # LIB_*
    version: str | None = None
    n: int | None = None
    seed: int | None = None
    median_ns: float | None = None
    ci_low_ns: float | None = None
    ci_high_ns: float | None = None
    p99: float | None = None
    max: float | None = None
    legacy: bool = False


class TrendSeries(msgspec.Struct):
    library: str
    role: str
    unit: str | None = None
    points: list[TrendPoint] = []           # oldest first


class TrendReport(msgspec.Struct):
    """Body of GET /api/results/trend and `benchctl trend --json`."""
    experiment: str
    library: str | None                     # the --library filter, None: every library
    series: list[TrendSeries] = []
    runs_read: int = 0                      # published runs that have this experiment
    warnings: list[str] = []
    schema_version: int = SCHEMA_VERSION

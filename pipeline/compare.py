"""Compare two runs: per experiment x library, did it get slower, faster, less accurate?

Pure functions over two schema.RunDetail (no file is read here, except by `baseline_for`,
which looks for the run to compare a new one with). The rule for a speed regression is
asv's: the ratio of medians head/base is beyond `threshold` AND the difference is
significant, by a two-sided Mann-Whitney U test over the stored round samples at p < ALPHA
(0.002). When the two runs have too few rounds for U to ever reach that p (5 + 5 rounds:
the smallest two-sided p is 2/252 = 0.008), significance falls back, as in asv, to
confidence intervals: the 99 % bootstrap CI of the ratio must lie wholly beyond 1. A run
without samples (written before they were kept) gets the ratio of medians only and no
significance, and the row says so (schema.NO_SAMPLES_NOTE).

Accuracy: with the same n and seed both runs computed the same cases (the pipeline is
bit-reproducible), so a p99 or max error growing by more than `error_tolerance` (x1.10),
more NaN/Inf errors, or a library that was ok and now fails, is a regression too. With a
different n or seed the errors are shown but not judged (other cases, other maxima).

scipy is imported only when a comparison is computed: rendering a report stays cheap.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from pipeline import loader, schema

DEFAULT_THRESHOLD = 1.10
DEFAULT_ERROR_TOLERANCE = 1.10
ALPHA = 0.002                 # asv's p threshold
CONFIDENCE = 0.95             # the CI shown for each ratio
FALLBACK_CONFIDENCE = 0.99    # the CI that decides significance when U cannot
N_RESAMPLES = 9999            # scipy's default
BOOTSTRAP_SEED = 20261204     # fixed: the same two runs always give the same report
# Metadata fields that always differ or are shown elsewhere (adapter_versions: per row)
_ENV_SKIP = ("utc_time", "argv", "seed", "adapter_versions", "git_sha", "git_dirty",
             "cpu_time_s", "peak_rss_bytes")  # what the run cost: not its environment
_CONFIG_FIELDS = ("experiments", "n", "seed", "perf_rounds", "no_perf")


class CompareError(ValueError):
    """Bad compare parameters (the message names the parameter)."""


def check_parameters(threshold: float, error_tolerance: float) -> None:
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 1):
        raise CompareError(f"threshold: must be a ratio > 1 (e.g. 1.10), got {threshold!r}")
    if not (isinstance(error_tolerance, (int, float)) and math.isfinite(error_tolerance)
            and error_tolerance >= 1):
        raise CompareError(f"error_tolerance: must be a factor >= 1, got {error_tolerance!r}")


# --- statistics ----------------------------------------------------------------------------

def _samples(perf: schema.PerfStats | None) -> list[float]:
    if perf is None:
        return []
    return [x for x in perf.samples_ns if math.isfinite(x) and x > 0]


def min_two_sided_p(n: int, m: int) -> float:
    """The smallest p an exact two-sided Mann-Whitney U test over n and m samples can give."""
    return min(1.0, 2.0 / math.comb(n + m, n))


def ratio_ci(base: Sequence[float], head: Sequence[float], key: str,
             confidence: float = CONFIDENCE) -> tuple[float, float, float, float] | None:
    """(low, high) at `confidence` and (low, high) at FALLBACK_CONFIDENCE of median(head) /
    median(base), by a percentile bootstrap resampling each run's rounds independently
    (scipy.stats.bootstrap). Seeded from `key`: same samples, same interval. None with
    fewer than 2 rounds on a side. Percentile, not BCa: BCa's jackknife over 5-10 rounds
    often degenerates (all jackknife medians equal) and yields NaN."""
    if len(base) < 2 or len(head) < 2:
        return None
    import numpy as np
    from scipy import stats

    def stat(b: np.ndarray, h: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(h, axis=axis) / np.median(b, axis=axis)

    rng = np.random.default_rng([BOOTSTRAP_SEED, zlib.crc32(key.encode())])
    res = stats.bootstrap((np.asarray(base, float), np.asarray(head, float)), stat,
                          n_resamples=N_RESAMPLES, confidence_level=confidence,
                          method="percentile", vectorized=True, paired=False, rng=rng)
    dist = res.bootstrap_distribution
    tail = 100 * (1 - FALLBACK_CONFIDENCE) / 2
    lo99, hi99 = np.percentile(dist, [tail, 100 - tail])
    return (float(res.confidence_interval.low), float(res.confidence_interval.high),
            float(lo99), float(hi99))


def mann_whitney_p(base: Sequence[float], head: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value (scipy chooses exact or asymptotic)."""
    from scipy import stats
    return float(stats.mannwhitneyu(head, base, alternative="two-sided").pvalue)


def _speed(row: schema.CompareRow, base: schema.PerfStats | None,
           head: schema.PerfStats | None, threshold: float, alpha: float) -> None:
    """Fill the speed columns of `row` (ratio, CI, p, significance, speed regression)."""
    if base is None or head is None or base.median_ns <= 0:
        return
    row.base_median_ns, row.head_median_ns = base.median_ns, head.median_ns
    row.ratio = head.median_ns / base.median_ns
    b, h = _samples(base), _samples(head)
    row.base_rounds, row.head_rounds = len(b), len(h)
    if not b or not h:
        row.notes.append(schema.NO_SAMPLES_NOTE)
        return
    ci = ratio_ci(b, h, f"{row.experiment}/{row.library}")
    if ci is not None:
        row.ratio_ci_low, row.ratio_ci_high = ci[0], ci[1]
    row.p_value = mann_whitney_p(b, h)
    if min_two_sided_p(len(b), len(h)) < alpha:
        row.test = schema.TEST_MANNWHITNEYU
        row.significant = row.p_value < alpha
    elif ci is not None:
        row.test = schema.TEST_CI99
        row.significant = ci[2] > 1.0 or ci[3] < 1.0
        row.notes.append(f"{len(b)} + {len(h)} rounds: Mann-Whitney U cannot reach "
                         f"p < {alpha:g}; significance from the 99 % CI of the ratio")
    else:
        row.notes.append(f"{len(b)} + {len(h)} rounds: too few for any significance")
    if row.significant and row.ratio > threshold:
        row.regressions.append(schema.REGRESSED_SPEED)
    elif row.significant and row.ratio < 1 / threshold:
        row.improved = True


def _grew(base: float | None, head: float | None, tolerance: float) -> bool:
    return base is not None and head is not None and head > base * tolerance


def _accuracy(row: schema.CompareRow, base: schema.AccuracyStats | None,
              head: schema.AccuracyStats | None, tolerance: float, same_cases: bool) -> None:
    if base is None and head is None:
        return
    row.unit = (head or base).unit  # type: ignore[union-attr]
    if base is not None:
        row.base_p99, row.base_max = base.p99, base.max
        row.base_nonfinite = base.nan_count + base.inf_count
    if head is not None:
        row.head_p99, row.head_max = head.p99, head.max
        row.head_nonfinite = head.nan_count + head.inf_count
    if not same_cases:
        return
    if _grew(row.base_p99, row.head_p99, tolerance):
        row.regressions.append(schema.REGRESSED_P99)
    if _grew(row.base_max, row.head_max, tolerance):
        row.regressions.append(schema.REGRESSED_MAX)
    if (row.base_nonfinite is not None and row.head_nonfinite is not None
            and row.head_nonfinite > row.base_nonfinite):
        row.regressions.append(schema.REGRESSED_NONFINITE)


def compare_libraries(experiment: str, base: schema.LibraryResult, head: schema.LibraryResult,
                      threshold: float, error_tolerance: float, alpha: float,
                      same_cases: bool) -> schema.CompareRow:
    """One row: speed, accuracy, status and version of one library in both runs."""
    row = schema.CompareRow(experiment=experiment, library=head.library, role=head.role,
                            base_status=base.status, head_status=head.status,
                            base_version=base.version, head_version=head.version)
    if base.status == schema.LIB_OK and head.status == schema.LIB_FAILED:
        row.regressions.append(schema.REGRESSED_STATUS)
    if base.status == schema.LIB_OK and head.status == schema.LIB_OK:
        _speed(row, base.perf, head.perf, threshold, alpha)
        _accuracy(row, base.accuracy, head.accuracy, error_tolerance, same_cases)
    return row


# --- runs ----------------------------------------------------------------------------------

def _text(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(_text(x) for x in v)
    return str(v)


def _differences(base: dict[str, object], head: dict[str, object], fields: Sequence[str],
                 prefix: str = "") -> list[schema.Difference]:
    out = []
    for f in fields:
        b, h = base.get(f), head.get(f)
        if b != h:
            out.append(schema.Difference(field=prefix + f,
                                         base="-" if b is None else _text(b),
                                         head="-" if h is None else _text(h)))
    return out


def environment(base: schema.Metadata, head: schema.Metadata) -> list[schema.Difference]:
    """Every Metadata field that differs (CPU, cores, OS, Python, numpy, load and whatever
    the runs recorded besides: BLAS, thread settings, frequency scaling, when present)."""
    b, h = msgspec.to_builtins(base), msgspec.to_builtins(head)
    fields = [f for f in dict.fromkeys([*b, *h]) if f not in _ENV_SKIP]
    out = _differences(b, h, fields)
    bv: dict[str, object] = dict(base.adapter_versions)
    hv: dict[str, object] = dict(head.adapter_versions)
    return out + _differences(bv, hv, sorted(set(bv) | set(hv)), "version of ")


def compare(base: schema.RunDetail, head: schema.RunDetail, *,
            threshold: float = DEFAULT_THRESHOLD,
            error_tolerance: float = DEFAULT_ERROR_TOLERANCE,
            alpha: float = ALPHA) -> schema.CompareReport:
    """The comparison of two runs (see the module docstring for the rules)."""
    check_parameters(threshold, error_tolerance)
    rep = schema.CompareReport(base_run_id=base.run_id, head_run_id=head.run_id,
                               threshold=float(threshold),
                               error_tolerance=float(error_tolerance), alpha=alpha,
                               verdict=schema.VERDICT_OK)
    bm, hm = base.manifest, head.manifest
    if bm is not None and hm is not None:
        rep.config = _differences(msgspec.to_builtins(bm.config), msgspec.to_builtins(hm.config),
                                  _CONFIG_FIELDS)
        rep.environment = environment(bm.metadata, hm.metadata)
    else:
        rep.notes.append("a legacy run has no manifest: configuration and environment "
                         "cannot be compared")
    same_cases = not any(d.field in ("n", "seed") for d in rep.config)
    if not same_cases:
        rep.notes.append("n or seed differ: the runs measured different cases, so error "
                         "changes are shown but not counted as regressions")
    for exp_name, hexp in head.experiments.items():
        bexp = base.experiments.get(exp_name)
        if bexp is None:
            rep.only_in_head += [f"{exp_name}/{lib}" for lib in hexp.libraries]
            continue
        for lib, hres in hexp.libraries.items():
            bres = bexp.libraries.get(lib)
            if bres is None:
                rep.only_in_head.append(f"{exp_name}/{lib}")
                continue
            rep.rows.append(compare_libraries(exp_name, bres, hres, threshold,
                                              error_tolerance, alpha, same_cases))
        rep.only_in_base += [f"{exp_name}/{lib}" for lib in bexp.libraries
                             if lib not in hexp.libraries]
    for exp_name, bexp in base.experiments.items():
        if exp_name not in head.experiments:
            rep.only_in_base += [f"{exp_name}/{lib}" for lib in bexp.libraries]
    if any(r.regressions for r in rep.rows):
        rep.verdict = schema.VERDICT_REGRESSION
    return rep


# --- the automatic check before publishing ---------------------------------------------------

def comparable(run: schema.RunSummary, manifest: schema.Manifest) -> bool:
    """Same experiments, n and seed: the runs measured the same cases."""
    cfg = manifest.config
    return (run.layout == "v1" and run.status == schema.RUN_COMPLETE and run.n == cfg.n
            and run.seed == cfg.seed and sorted(run.experiments) == sorted(cfg.experiments))


def baseline_for(results_dir: Path, manifest: schema.Manifest) -> str | None:
    """The newest published run that started before `manifest`'s run and is comparable.
    Reads one page of run summaries at a time, newest first."""
    before: str | None = manifest.run_id
    while before is not None:
        page = loader.page_runs(results_dir, limit=50, before=before)
        for run in page.runs:
            if comparable(run, manifest):
                return run.run_id
        before = page.next
    return None


def regression_check(results_dir: Path, head: schema.RunDetail,
                     threshold: float = DEFAULT_THRESHOLD,
                     error_tolerance: float = DEFAULT_ERROR_TOLERANCE) -> schema.RegressionCheck:
    """The verdict stored in a run's manifest just before it is published."""
    assert head.manifest is not None
    base_id = baseline_for(results_dir, head.manifest)
    if base_id is None:
        return schema.RegressionCheck(
            verdict=schema.VERDICT_NO_BASELINE, threshold=threshold,
            error_tolerance=error_tolerance,
            reason="no earlier published run with the same experiments, n and seed")
    report = compare(loader.load_run(results_dir, base_id), head, threshold=threshold,
                     error_tolerance=error_tolerance)
    return schema.RegressionCheck(verdict=report.verdict, base_run_id=base_id,
                                  threshold=threshold, error_tolerance=error_tolerance,
                                  rows=[r for r in report.rows if r.regressions])


# --- Markdown --------------------------------------------------------------------------------

def _num(x: float | None, fmt: str = ".4g") -> str:
    return "-" if x is None else format(x, fmt)


def _ratio(r: schema.CompareRow) -> str:
    if r.ratio is None:
        return "-"
    s = f"{r.ratio:.3f}"
    if r.ratio_ci_low is not None and r.ratio_ci_high is not None:
        s += f" [{r.ratio_ci_low:.3f}, {r.ratio_ci_high:.3f}]"
    return s


def _change(b: float | None, h: float | None) -> str:
    if b is None and h is None:
        return "-"
    return f"{_num(b, '.3g')} → {_num(h, '.3g')}" if b != h else _num(h, ".3g")


def row_mark(r: schema.CompareRow) -> str:
    """What a person reads first about a row."""
    if r.regressions:
        return "REGRESSION (" + ", ".join(r.regressions) + ")"
    if r.improved:
        return "faster"
    if r.base_status != r.head_status:
        return f"{r.base_status} → {r.head_status}"
    if r.ratio is not None and r.test is None:
        return "not judged (no significance)"
    return "ok"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc: Callable[[str], str] = lambda c: c.replace("|", "\\|").replace("\n", " ")
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows])


def render_markdown(rep: schema.CompareReport) -> str:
    """The report as Markdown (what `benchctl compare` prints)."""
    regressed = [r for r in rep.rows if r.regressions]
    out = [f"# compare {rep.base_run_id} → {rep.head_run_id}", "",
           f"**verdict: {rep.verdict}**" + (f" — {len(regressed)} regressed row(s)"
                                             if regressed else ""), "",
           f"A regression: a ratio head/base above {rep.threshold:g} that is significant "
           f"(Mann-Whitney U p < {rep.alpha:g}, or the 99 % CI of the ratio when too few "
           f"rounds), a p99/max error up by more than ×{rep.error_tolerance:g}, more NaN/Inf "
           f"errors, or ok → failed. Ratio: median ns/op head/base [95 % CI]; > 1 is slower.",
           ""]
    rows = []
    for r in rep.rows:
        version = (r.head_version or "-") if r.base_version == r.head_version \
            else f"{r.base_version or '-'} → {r.head_version or '-'}"
        rows.append([r.experiment, r.library + (" (ref)" if r.role == schema.ROLE_REFERENCE
                                                 else ""),
                     version, _ratio(r), _num(r.p_value, ".2g"),
                     f"{r.base_rounds}+{r.head_rounds}", _change(r.base_p99, r.head_p99),
                     _change(r.base_max, r.head_max), r.unit or "-", row_mark(r)])
    out += _md_table(["experiment", "library", "version", "ratio [95% CI]", "p", "rounds",
                      "p99 error", "max error", "unit", "verdict"], rows)
    notes: dict[str, list[str]] = {}
    for r in rep.rows:
        for n in r.notes:
            notes.setdefault(n, []).append(f"{r.experiment}/{r.library}")
    if notes:
        out += ["", "Notes:", ""] + [f"- {n}: {', '.join(rows)}" for n, rows in notes.items()]
    for title, diffs in (("Configuration differences", rep.config),
                         ("Environment differences", rep.environment)):
        out += ["", f"## {title}", ""]
        if diffs:
            out += _md_table(["field", "base", "head"], [[d.field, d.base, d.head] for d in diffs])
        else:
            out.append("none")
    for title, items in (("Only in base", rep.only_in_base), ("Only in head", rep.only_in_head)):
        if items:
            out += ["", f"{title}: " + ", ".join(items)]
    out += [f"\n{n}" for n in rep.notes]
    return "\n".join(out) + "\n"

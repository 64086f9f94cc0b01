"""pipeline.compare on runs made by hand: the statistics of a comparison.

Samples are synthetic with realistic noise (log-normal, 3 % spread, as rounds on a quiet
machine, plus one preempted round at 1.6x in each run, as the audit saw on a loaded one);
the slowdown is injected into one test adapter's samples. Everything is seeded, so each
assertion holds deterministically."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline import compare, schema


def _noisy(median: float, rounds: int, seed: int, spread: float = 0.03,
           disturbed: bool = True) -> list[float]:
    rng = np.random.default_rng(seed)
    xs = median * np.exp(rng.normal(0.0, spread, rounds))
    if disturbed:
        xs[rng.integers(rounds)] *= 1.6      # one round disturbed by other load
    return [float(x) for x in xs]


def _perf(samples: list[float]) -> schema.PerfStats:
    med = float(np.median(samples)) if samples else 1000.0
    return schema.PerfStats(rounds=len(samples), inner_repeats=1, ops_per_call=1,
                            median_ns=med, mean_ns=med, stdev_ns=0.0, min_ns=med, max_ns=med,
                            cv_pct=0.0, call_ns=med, timer_resolution_ns=1.0, valid=True,
                            samples_ns=samples)


def _lib(run_id: str, lib: str, samples: list[float], *, p99: float | None = 1.0,
         mx: float | None = 2.0, status: str = schema.LIB_OK, nan: int = 0,
         version: str = "1.0", median: float | None = None) -> schema.LibraryResult:
    perf = _perf(samples)
    if median is not None:
        perf.median_ns = median
    acc = None if lib == "ref" else schema.AccuracyStats(
        unit="mas", compared=100, finite=100 - nan, nan_count=nan, inf_count=0, p99=p99, max=mx)
    return schema.LibraryResult(run_id=run_id, experiment="gmst_era", library=lib,
                                role=schema.ROLE_REFERENCE if lib == "ref"
                                else schema.ROLE_CANDIDATE,
                                status=status, reference="ref", version=version,
                                accuracy=acc, perf=perf if status == schema.LIB_OK else None)


def _run(run_id: str, libs: list[schema.LibraryResult], *, n: int = 100, seed: int = 42,
         cpu: str = "Test CPU", numpy_version: str = "2.0.0",
         load: list[float] | None = None) -> schema.RunDetail:
    meta = schema.Metadata(utc_time="2026-12-04T00:00:00+00:00", hostname="lab",
                           cpu_model=cpu, cores=2, os="Linux", python="3.11.2",
                           numpy=numpy_version, git_sha=None, git_dirty=None,
                           adapter_versions={lb.library: lb.version or "?" for lb in libs},
                           seed=seed, argv=[], load_avg=load or [0.1, 0.1, 0.1])
    cfg = schema.RunConfigRecord(experiments=["gmst_era"], n=n, seed=seed, perf_rounds=10,
                                 no_perf=False, ci=False, worker_timeout_s=60.0)
    entry = schema.ExperimentEntry(status=schema.EXP_DONE, reference="ref",
                                   libraries={lb.library: lb.status for lb in libs},
                                   finished_at="", duration_s=1.0)
    m = schema.Manifest(run_id=run_id, status=schema.RUN_COMPLETE, created_at="",
                        config=cfg, metadata=meta, experiments={"gmst_era": entry})
    exp = schema.ExperimentDetail(name="gmst_era", libraries={lb.library: lb for lb in libs},
                                  status=schema.EXP_DONE)
    return schema.RunDetail(run_id=run_id, layout="v1", manifest=m,
                            experiments={"gmst_era": exp})


def _pair(head_factor: float, rounds: int = 15, seed: int = 0, disturbed: bool = True
          ) -> tuple[schema.RunDetail, schema.RunDetail]:
    """Base and head runs of a reference and one test adapter `toy`; the head's toy is
    `head_factor` times slower (the injected slowdown), the reference unchanged."""
    def noisy(median: float, k: int) -> list[float]:
        return _noisy(median, rounds, seed + k, disturbed=disturbed)
    base = _run("2026-12-04_00-00-00", [_lib("b", "ref", noisy(500, 0)),
                                        _lib("b", "toy", noisy(1000, 1))])
    head = _run("2026-12-04_01-00-00", [_lib("h", "ref", noisy(500, 2)),
                                        _lib("h", "toy", noisy(1000 * head_factor, 3))])
    return base, head


def _row(rep: schema.CompareReport, lib: str) -> schema.CompareRow:
    return next(r for r in rep.rows if r.library == lib)


def test_a_20_percent_slowdown_injected_into_a_test_adapter_is_a_regression() -> None:
    base, head = _pair(1.20)
    rep = compare.compare(base, head)
    toy = _row(rep, "toy")
    assert rep.verdict == schema.VERDICT_REGRESSION
    assert toy.regressions == [schema.REGRESSED_SPEED]
    assert toy.test == schema.TEST_MANNWHITNEYU and toy.p_value < compare.ALPHA
    assert toy.ratio == pytest.approx(1.2, rel=0.05)
    assert toy.ratio_ci_low is not None and 1.0 < toy.ratio_ci_low < 1.2 < toy.ratio_ci_high
    assert _row(rep, "ref").regressions == []          # the unchanged reference is not flagged


def test_identical_reruns_are_not_regressions() -> None:
    """Fifty reruns of the same distribution (other noise, other disturbed round): never a
    regression, and the 95 % CI of the ratio holds 1 in almost all of them."""
    covered = 0
    for seed in range(0, 200, 4):
        rep = compare.compare(*_pair(1.0, seed=seed))
        assert rep.verdict == schema.VERDICT_OK, compare.render_markdown(rep)
        toy = _row(rep, "toy")
        covered += toy.ratio_ci_low <= 1.0 <= toy.ratio_ci_high
    assert covered >= 45


def test_ratio_ci_covers_the_known_ratio() -> None:
    """CI coverage on synthetic samples of known median: over 200 pairs of 10 rounds each
    (log-normal, 5 % spread) with a true ratio of medians 1.2, the 95 % CI holds 1.2 in at
    least 90 % of them (measured: 98 %; the percentile bootstrap of a median is
    conservative for this shape)."""
    rng = np.random.default_rng(7)
    hits = 0
    for i in range(200):
        b = 1000 * np.exp(rng.normal(0, 0.05, 10))
        h = 1200 * np.exp(rng.normal(0, 0.05, 10))
        lo, hi, lo99, hi99 = compare.ratio_ci(list(b), list(h), f"k{i}")
        assert lo99 <= lo <= hi <= hi99
        hits += lo <= 1.2 <= hi
    assert 0.90 * 200 <= hits


def test_same_inputs_give_the_same_report() -> None:
    a = compare.compare(*_pair(1.2))
    b = compare.compare(*_pair(1.2))
    assert schema.encode(a) == schema.encode(b)


def test_too_few_rounds_for_u_fall_back_to_the_99_percent_ci() -> None:
    """5 + 5 rounds: the smallest two-sided U p is 2/252 > 0.002, so U alone could never
    flag anything (asv then compares confidence intervals). Five quiet rounds each: with a
    disturbed round among five, the median's bootstrap is too wide to decide anything."""
    assert compare.min_two_sided_p(5, 5) == pytest.approx(2 / 252)
    assert compare.min_two_sided_p(10, 10) < compare.ALPHA
    slow = compare.compare(*_pair(1.3, rounds=5, disturbed=False))
    toy = _row(slow, "toy")
    assert toy.test == schema.TEST_CI99 and toy.regressions == [schema.REGRESSED_SPEED]
    assert any("cannot reach" in n for n in toy.notes)
    same = compare.compare(*_pair(1.0, rounds=5, disturbed=False))
    assert same.verdict == schema.VERDICT_OK


def test_runs_without_samples_get_a_ratio_and_no_significance() -> None:
    base = _run("2026-12-04_00-00-00", [_lib("b", "toy", [], median=1000.0)])
    head = _run("2026-12-04_01-00-00", [_lib("h", "toy", [], median=2000.0)])
    rep = compare.compare(base, head)
    toy = _row(rep, "toy")
    assert toy.ratio == 2.0 and not toy.significant and toy.test is None
    assert toy.notes == [schema.NO_SAMPLES_NOTE] and rep.verdict == schema.VERDICT_OK
    assert schema.NO_SAMPLES_NOTE in compare.render_markdown(rep)


def test_error_growth_nan_and_failure_are_regressions_for_the_same_cases() -> None:
    s = _noisy(1000, 10, 1)
    base = _run("2026-12-04_00-00-00", [_lib("b", "p", s, p99=1.0), _lib("b", "m", s, mx=2.0),
                                        _lib("b", "nan", s), _lib("b", "f", s),
                                        _lib("b", "fine", s, p99=1.0)])
    head = _run("2026-12-04_01-00-00", [_lib("h", "p", s, p99=1.2), _lib("h", "m", s, mx=3.0),
                                        _lib("h", "nan", s, nan=3),
                                        _lib("h", "f", [], status=schema.LIB_FAILED),
                                        _lib("h", "fine", s, p99=1.05)])
    rep = compare.compare(base, head)
    assert {r.library: r.regressions for r in rep.rows} == {
        "p": [schema.REGRESSED_P99], "m": [schema.REGRESSED_MAX],
        "nan": [schema.REGRESSED_NONFINITE], "f": [schema.REGRESSED_STATUS], "fine": []}
    other_seed = _run("2026-12-04_01-00-00",
                      list(head.experiments["gmst_era"].libraries.values()), seed=7)
    rep2 = compare.compare(base, other_seed)
    assert {r.library: r.regressions for r in rep2.rows}["p"] == []   # other cases: shown only
    assert any("different cases" in n for n in rep2.notes)
    assert {"field": "seed", "base": "42", "head": "7"} in \
        [{"field": d.field, "base": d.base, "head": d.head} for d in rep2.config]


def test_versions_and_environment_differences_are_listed() -> None:
    s = _noisy(1000, 10, 1)
    base = _run("2026-12-04_00-00-00", [_lib("b", "toy", s, version="1.0")],
                cpu="CPU A", load=[0.1, 0.2, 0.3])
    head = _run("2026-12-04_01-00-00", [_lib("h", "toy", s, version="1.1")],
                cpu="CPU B", numpy_version="2.1.0", load=[3.0, 2.0, 1.0])
    rep = compare.compare(base, head)
    diffs = {d.field: (d.base, d.head) for d in rep.environment}
    assert diffs["cpu_model"] == ("CPU A", "CPU B")
    assert diffs["numpy"] == ("2.0.0", "2.1.0")
    assert diffs["load_avg"] == ("0.1, 0.2, 0.3", "3, 2, 1")
    assert diffs["version of toy"] == ("1.0", "1.1")
    assert "python" not in diffs
    row = _row(rep, "toy")
    assert (row.base_version, row.head_version) == ("1.0", "1.1")
    md = compare.render_markdown(rep)
    assert "1.0 → 1.1" in md and "CPU A" in md


def test_bad_parameters_name_the_parameter() -> None:
    base, head = _pair(1.0)
    with pytest.raises(compare.CompareError, match="threshold"):
        compare.compare(base, head, threshold=1.0)
    with pytest.raises(compare.CompareError, match="error_tolerance"):
        compare.compare(base, head, error_tolerance=0.5)

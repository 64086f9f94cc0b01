"""pipeline.stats on hand-made arrays."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline import stats


def test_accuracy_percentiles_and_counts() -> None:
    err = np.array([1.0, -2.0, 3.0, np.nan, np.inf, 4.0, 0.5])
    idx = np.array([10, 11, 12, 13, 14, 15, 16])
    inputs = {"x": np.arange(20, dtype=float) * 0.5}
    a = stats.accuracy(err, idx, inputs, "mas")
    finite = np.abs(np.array([1.0, -2.0, 3.0, 4.0, 0.5]))
    assert (a.compared, a.finite, a.nan_count, a.inf_count) == (7, 5, 1, 1)
    assert a.p50 == pytest.approx(np.percentile(finite, 50))
    assert a.p99 == pytest.approx(np.percentile(finite, 99))
    assert a.max == 4.0 and a.mean == pytest.approx(finite.mean())
    assert a.rms == pytest.approx(np.sqrt(np.mean(finite ** 2)))
    # non-finite first (by case index), then the largest finite errors
    assert [w.index for w in a.worst] == [13, 14, 15, 12, 11]
    assert [w.error for w in a.worst] == [None, None, 4.0, 3.0, 2.0]
    assert a.worst[2].inputs == {"x": 7.5}


def test_accuracy_with_nothing_finite() -> None:
    a = stats.accuracy(np.array([np.nan]), np.array([0]), {"x": np.zeros(1)}, "rad")
    assert a.p50 is None and a.max is None and a.nan_count == 1 and a.finite == 0


def test_perf_per_op_and_flags() -> None:
    p = stats.perf([1_000_000, 1_100_000, 900_000], inner_repeats=10, ops_per_call=100,
                   call_ns=100_000.0, resolution_ns=1.0, checksum=1.0)
    assert p.median_ns == pytest.approx(1000.0) and p.min_ns == pytest.approx(900.0)
    assert p.valid and p.cv_pct == pytest.approx(10.0)
    unstable = stats.perf([1_000, 2_000, 3_000], 1, 1, 2000.0, 1.0, 0.0)
    assert not unstable.valid and any(w.startswith("unstable") for w in unstable.warnings)
    too_fast = stats.perf([1_000] * 3, 100, 1, 0.5, 30.0, 0.0)
    assert not too_fast.valid and any(w.startswith("too fast") for w in too_fast.warnings)


def test_timer_resolution_is_positive_and_small() -> None:
    r = stats.timer_resolution_ns()
    assert 0 < r < 1e6


def test_busy_rounds_are_explained_not_hidden() -> None:
    p = stats.perf([1_000, 2_500, 1_000], 1, 1, 1000.0, 1.0, 0.0,
                   round_cpu_ns=[990, 1_000, 1_000])
    assert p.busy_rounds == 1 and p.cpu_median_ns == 1000.0
    assert any(w.startswith("some rounds disturbed: 1 of 3") for w in p.warnings)
    assert p.median_ns == 1000.0          # statistics stay wall-clock, as timeit's
    slowed = stats.perf([3_000, 3_000, 3_000], 1, 1, 3000.0, 1.0, 0.0,
                        round_cpu_ns=[1_000, 1_000, 1_000])
    assert slowed.cv_pct == 0 and not slowed.valid      # stable, but measuring the load
    assert any(w.startswith("machine busy: 3 of 3") for w in slowed.warnings)

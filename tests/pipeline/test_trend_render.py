"""A trend over library versions, rendered (Markdown and HTML) from a hand-made TrendReport:
version changes are found and marked, a point with half a CI does not break either form."""
from __future__ import annotations

from pipeline import schema, trend
from pipeline.report.trend_report import render_trend, version_changes


def _point(run_id: str, version: str | None, ns: float, **kw: float) -> schema.TrendPoint:
    return schema.TrendPoint(run_id=run_id, created_at=None, status=schema.LIB_OK,
                             version=version, median_ns=ns, p99=0.5, **kw)


def _report() -> schema.TrendReport:
    pts = [_point("2026-01-01_00-00-00", "1.0", 100.0, ci_low_ns=95.0, ci_high_ns=105.0),
           _point("2026-01-02_00-00-00", "1.0", 101.0),
           _point("2026-01-03_00-00-00", None, 102.0),       # version unknown that run
           _point("2026-01-04_00-00-00", "1.1", 150.0, ci_low_ns=140.0)]  # half a CI
    return schema.TrendReport(experiment="gmst_era", library="lib", runs_read=4, series=[
        schema.TrendSeries(library="lib", role=schema.ROLE_CANDIDATE, unit="mas", points=pts)])


def test_version_changes_are_found_across_runs_without_a_version() -> None:
    assert version_changes(_report().series[0]) == [("2026-01-04_00-00-00", "1.0", "1.1")]


def test_markdown_lists_each_run_and_each_version() -> None:
    md = trend.render_markdown(_report())
    assert "| 2026-01-01_00-00-00 | ok | 1.0 | - | 100 | [95, 105] | 0.5 |" in md
    assert "| 2026-01-04_00-00-00 | ok | 1.1 | - | 150 | - | 0.5 |" in md
    assert "| 1.1 | 1 | 2026-01-04_00-00-00 | 2026-01-04_00-00-00 | 150 | 0.5 |" in md


def test_html_marks_the_version_change_and_holds_two_plots() -> None:
    html = render_trend(_report())
    assert html.count("<svg") == 2 and "lib 1.0→1.1" in html
    assert html == render_trend(_report())

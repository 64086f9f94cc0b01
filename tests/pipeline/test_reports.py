"""The real orchestrator (toy registry) makes two runs; they are compared and all three
report kinds are drawn. Each published run carries its regression verdict (made before the
publishing rename) and its report.html; the HTML parses and holds one <svg> per expected
plot, and drawing again gives the same bytes. Without matplotlib (simulated: see
tests/support/nomatplotlib.py) the run is still published, without report.html, and the
orchestrator says so."""
from __future__ import annotations

import os
import sys
from html.parser import HTMLParser
from pathlib import Path

import msgspec
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

import pipeline_run as pr  # noqa: E402

from pipeline import compare, loader, schema, trend  # noqa: E402
from pipeline.report import REPORT_FILE  # noqa: E402
from pipeline.report.compare_report import render_compare  # noqa: E402
from pipeline.report.run_report import PLOTS_PER_EXPERIMENT, render_run  # noqa: E402
from pipeline.report.trend_report import render_trend  # noqa: E402
from tests.support.nomatplotlib import blocker_dir  # noqa: E402

EXPERIMENTS = ["gmst_era", "kepler_solver"]
ARGS = ["--experiments", ",".join(EXPERIMENTS), "--n", "60", "--perf-rounds", "3"]
SLOW_S = "0.002"     # toy_slow sleeps this long per call in the second run: far beyond 1.10


class _Checked(HTMLParser):
    """Parses a report and checks what a browser would need: a doctype, balanced <svg>
    elements, no script, no external reference."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doctype = False
        self.svgs = 0
        self.depth = 0
        self.tags: set[str] = set()
        self.external: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "svg":
            self.svgs += 1
            self.depth += 1
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.depth -= 1
            assert self.depth >= 0, "</svg> without <svg>"


def _check(html: str) -> int:
    p = _Checked()
    p.feed(html)
    p.close()
    assert p.doctype and p.depth == 0 and "script" not in p.tags and "link" not in p.tags
    assert not p.external, p.external        # self-contained: nothing fetched from anywhere
    return p.svgs


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, schema.RunDetail, schema.RunDetail, pr.Pipeline]:
    results = tmp_path_factory.mktemp("reports") / "results"
    rc, _ = pr.run(ARGS, results, pr.toy_env(), timeout=240)
    assert rc == 0
    rc, second = pr.run(ARGS, results, pr.toy_env(TOY_SLOW_SECONDS=SLOW_S), timeout=240)
    assert rc == 0, second.output
    first_id, second_id = [d.name for d in pr.published(results)]
    return (results, loader.load_run(results, first_id), loader.load_run(results, second_id),
            second)


def test_each_published_run_carries_its_regression_verdict(two_runs) -> None:
    results, first, second, proc = two_runs
    assert first.manifest.regression.verdict == schema.VERDICT_NO_BASELINE
    reg = second.manifest.regression
    assert reg.base_run_id == first.run_id
    rep = compare.compare(first, second)       # what the orchestrator computed, again
    assert reg.verdict == rep.verdict
    assert reg.rows == [r for r in rep.rows if r.regressions]
    published = [p for p in proc.progress if p["phase"] == "published"]
    assert published[0]["regression"] == msgspec.to_builtins(reg)
    assert {r.run_id: r.regression for r in loader.list_runs(results)} == {
        first.run_id: schema.VERDICT_NO_BASELINE, second.run_id: reg.verdict}
    slow = next(r for r in rep.rows if r.library == "toy_slow")
    assert slow.ratio > rep.threshold                   # the injected slowdown is seen
    # significant only with round samples (runs of this branch have none: say so)
    assert slow.regressions == ([schema.REGRESSED_SPEED] if slow.significant else [])
    assert slow.significant or schema.NO_SAMPLES_NOTE in slow.notes


def test_error_quantiles_are_stored_for_the_error_distribution(two_runs) -> None:
    _, first, _, _ = two_runs
    acc = first.experiments["gmst_era"].libraries["toy_close"].accuracy
    assert len(acc.quantiles) == 101 and acc.quantiles == sorted(acc.quantiles)
    assert acc.quantiles[-1] == acc.max and acc.quantiles[50] == pytest.approx(acc.p50)


def test_all_three_reports_parse_with_one_svg_per_plot_and_render_byte_identically(
        two_runs) -> None:
    results, first, second, _ = two_runs
    for run in (first, second):
        stored = (results / run.run_id / REPORT_FILE).read_text()
        assert _check(stored) == PLOTS_PER_EXPERIMENT * len(EXPERIMENTS)
        assert render_run(loader.load_run(results, run.run_id)) == stored  # another process
        for exp in EXPERIMENTS:
            assert f'id="{exp}"' in stored
    rep = compare.compare(first, second)
    html = render_compare(rep)
    assert _check(html) == 1
    assert render_compare(compare.compare(first, second)) == html
    tr = trend.trend(results, "kepler_solver")
    assert [p.run_id for p in tr.series[0].points] == [first.run_id, second.run_id]
    html = render_trend(tr)
    assert _check(html) == 2
    assert render_trend(trend.trend(results, "kepler_solver")) == html
    one = trend.trend(results, "kepler_solver", "toy_slow")
    assert [s.library for s in one.series] == ["toy_slow"]
    assert one.series[0].points[1].median_ns > one.series[0].points[0].median_ns


def test_without_matplotlib_the_run_is_published_without_report_and_says_so(
        tmp_path: Path) -> None:
    env = pr.toy_env()
    env["PYTHONPATH"] = os.pathsep.join([str(blocker_dir(tmp_path)), env["PYTHONPATH"]])
    results = tmp_path / "results"
    rc, p = pr.run(["--experiments", "gmst_era", "--n", "20", "--no-perf"], results, env)
    assert rc == 0, p.output
    [run] = pr.published(results)
    assert not (run / REPORT_FILE).exists()
    assert f"{REPORT_FILE} not written: matplotlib is not installed" in p.output
    assert loader.load_run(results, run.name).manifest.regression.verdict == \
        schema.VERDICT_NO_BASELINE

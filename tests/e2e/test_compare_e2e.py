"""Compare, trend and HTML reports through a real benchd on a real Unix socket and the real
benchctl. The runs are made by the real orchestrator (toy registry) and cloned under other
run ids (tests/support/runs.py); a synthetic 20 % slowdown with realistic noise is injected
into one test adapter's stored round samples (the timing engineer's worker stores real
ones), so the gate's outcome does not depend on this loaded machine's timing."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from pipeline import schema
from pipeline.report import REPORT_FILE
from tests.support.benchctl_run import BENCHCTL, bc, env_for
from tests.support.daemon import Daemon, daemon_factory  # noqa: F401 (fixture)
from tests.support.nomatplotlib import blocker_dir
from tests.support.runs import FIXTURES, REPO, clone_run

BASE, SAME, SLOW = "2024-05-01_10-00-00", "2024-05-02_10-00-00", "2024-05-03_10-00-00"
LIB = "toy_close"


def _noisy(median: float, seed: int, rounds: int = 15) -> list[float]:
    """Log-normal rounds (3 % spread) with one disturbed round at 1.6x."""
    rng = np.random.default_rng(seed)
    xs = median * np.exp(rng.normal(0.0, 0.03, rounds))
    xs[rng.integers(rounds)] *= 1.6
    return [float(x) for x in xs]


def _inject(run_dir: Path, samples: list[float]) -> None:
    """Give LIB's record in gmst_era these round samples (and their median)."""
    f = run_dir / "gmst_era" / f"{LIB}.json"
    res = msgspec.json.decode(f.read_bytes(), type=schema.LibraryResult)
    res.perf.samples_ns = samples
    res.perf.median_ns = float(np.median(samples))
    res.perf.ci_low_ns = res.perf.ci_high_ns = None   # the template's CI was of its own rounds
    f.write_bytes(schema.encode(res))
    (run_dir / REPORT_FILE).unlink(missing_ok=True)   # drawn from the old figures


def _template(where: Path) -> Path:
    """One real run with timings (toy registry), published under `where`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURES), str(REPO)]),
           "PIPELINE_REGISTRY": "toy_registry"}
    subprocess.run([sys.executable, "-m", "pipeline", "--results-dir", str(where),
                    "--experiments", "gmst_era", "--n", "20", "--perf-rounds", "3"],
                   env=env, check=True, capture_output=True, timeout=240)
    [run] = [p for p in where.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return run


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _template(tmp_path_factory.mktemp("compare-template"))


def _runs(d: Daemon, template: Path) -> None:
    results = d.root / "results"
    for run_id, samples in ((BASE, _noisy(1000, 1)), (SAME, _noisy(1000, 2)),
                            (SLOW, _noisy(1200, 3))):
        _inject(clone_run(template, results, run_id), samples)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_compare_gates_on_an_injected_slowdown_and_not_on_a_rerun(daemon_factory,
                                                                   template: Path) -> None:
    d = daemon_factory()
    _runs(d, template)
    rss_before = _rss_kb(d.proc.pid)
    slow = bc(d, "compare", BASE, SLOW, timeout=150)
    assert slow.returncode == 1, slow.stderr
    assert f"| gmst_era | {LIB} |" in slow.stdout and "REGRESSION (speed)" in slow.stdout
    assert "**verdict: regression**" in slow.stdout
    same = bc(d, "compare", BASE[:13], SAME, timeout=150)      # a prefix works too
    assert same.returncode == 0, same.stdout + same.stderr
    assert "**verdict: ok**" in same.stdout and "REGRESSION" not in same.stdout
    # `latest` is SLOW; --json is the API's CompareReport
    js = bc(d, "compare", BASE, "latest", "--json", timeout=150)
    rep = msgspec.json.decode(js.stdout.encode(), type=schema.CompareReport)
    assert js.returncode == 1 and rep.head_run_id == SLOW
    row = next(r for r in rep.rows if r.library == LIB)
    assert row.regressions == [schema.REGRESSED_SPEED] and row.p_value < 0.002
    assert row.ratio_ci_low > 1.0 and row.base_rounds == row.head_rounds == 15
    ref = next(r for r in rep.rows if r.role == schema.ROLE_REFERENCE)
    # the template's real rounds are kept (3 + 3 of them): compared with samples
    assert not any("no samples" in note for note in ref.notes), ref.notes
    # a higher threshold lets the 20 % through
    assert bc(d, "compare", BASE, SLOW, "--threshold", "1.5", timeout=150).returncode == 0
    html = bc(d, "compare", BASE, SLOW, "--html", timeout=150)
    assert html.returncode == 1 and html.stdout.count("<svg") == 1
    # scipy ran in a child interpreter: the daemon's memory did not take it in (~90 MB)
    rss_after = _rss_kb(d.proc.pid)
    print(f"benchd RSS before {rss_before} kB, after 5 compares {rss_after} kB")
    assert rss_after - rss_before < 30_000
    assert "scipy" not in Path(f"/proc/{d.proc.pid}/maps").read_text()


def test_compare_refuses_bad_requests_by_name(daemon_factory, template: Path) -> None:
    d = daemon_factory()
    _runs(d, template)
    cases = {"/api/results/compare?base=2024&head=latest": (400, "ambiguous"),
             "/api/results/compare?head=latest": (400, "base: required"),
             f"/api/results/compare?base={BASE}&head=2023-01-01_00-00-00": (404, "no run"),
             f"/api/results/compare?base={BASE}&head=latest&threshold=1": (400, "threshold"),
             f"/api/results/compare?base={BASE}&head=latest&threshold=x": (400, "threshold"),
             f"/api/results/compare?base={BASE}&head=latest&error_tolerance=0.5":
                 (400, "error_tolerance"),
             "/api/results/trend": (400, "experiment: required"),
             "/api/results/trend?experiment=../x": (400, "experiment"),
             "/api/results/2023-01-01_00-00-00/report.html": (404, "no run")}
    for path, (status, text) in cases.items():
        r = d.get(path, timeout=120)
        assert r.status == status and text in r.error["message"], (path, r.status, r.body)
    bad = bc(d, "compare", BASE, "latest", "--threshold", "0.9")
    assert bad.returncode == 2 and "--threshold" in bad.stderr


def test_trend_results_html_and_the_regression_mark(daemon_factory, template: Path) -> None:
    d = daemon_factory()
    _runs(d, template)
    results = d.root / "results"
    # SLOW as the orchestrator would have published it: with a regression verdict
    m_path = results / SLOW / "manifest.json"
    m = msgspec.json.decode(m_path.read_bytes(), type=schema.Manifest)
    row = schema.CompareRow(experiment="gmst_era", library=LIB, role=schema.ROLE_CANDIDATE,
                            base_status="ok", head_status="ok", ratio=1.2, p_value=1e-5,
                            regressions=[schema.REGRESSED_SPEED])
    m.regression = schema.RegressionCheck(verdict=schema.VERDICT_REGRESSION, base_run_id=SAME,
                                          threshold=1.1, rows=[row])
    m_path.write_bytes(schema.encode(m))
    listing = bc(d, "results")
    assert listing.returncode == 0
    marks = {line.split()[0]: line.split()[-2] for line in listing.stdout.splitlines()[1:]}
    assert marks[SLOW] == "REGRESSION" and "REGR" in listing.stdout.splitlines()[0]
    shown = bc(d, "results", SLOW)
    assert f"regression check: regression against {SAME}" in shown.stdout
    assert f"gmst_era/{LIB}: speed (×1.200 slower" in shown.stdout
    # trend: every run, oldest first, the injected medians visible
    tr = bc(d, "trend", "gmst_era", "--library", LIB, "--json")
    rep = msgspec.json.decode(tr.stdout.encode(), type=schema.TrendReport)
    assert [p.run_id for p in rep.series[0].points][-3:] == [BASE, SAME, SLOW]
    assert rep.series[0].points[-1].median_ns > 1.1 * rep.series[0].points[-3].median_ns
    md = bc(d, "trend", "gmst_era")
    assert md.returncode == 0 and f"## {LIB}" in md.stdout and f"| {SLOW} |" in md.stdout
    assert bc(d, "trend", "gmst_era", "--html").stdout.count("<svg") == 2
    assert bc(d, "trend", "no_such_experiment").returncode == 4
    # report.html: the stored one byte for byte; drawn on request for a run without one
    stored = (template / REPORT_FILE).read_bytes()
    (results / BASE / REPORT_FILE).write_bytes(stored)
    got = subprocess.run([*BENCHCTL, "results", BASE, "--html"], capture_output=True,
                         env=env_for(d), timeout=60, stdin=subprocess.DEVNULL)
    assert got.returncode == 0 and got.stdout == stored
    r = d.get(f"/api/results/{SAME}/report.html", timeout=120)
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    assert r.body.count(b"<svg") == 3
    assert (d.root / ".cache" / "matplotlib").is_dir()    # its font cache outlives the child
    assert d.get(f"/api/results/{SAME}/report.html", timeout=120).body == r.body
    # a report.html that is a FIFO or a link out is never read: the report is drawn instead
    os.mkfifo(results / SAME / REPORT_FILE)
    (results / SLOW / REPORT_FILE).symlink_to("/etc/passwd")
    for run_id in (SAME, SLOW):
        r = d.get(f"/api/results/{run_id}/report.html", timeout=120)
        assert r.status == 200 and r.body.count(b"<svg") == 3 and b"root:" not in r.body


def test_without_matplotlib_benchd_and_benchctl_say_so(daemon_factory, template: Path,
                                                       tmp_path: Path) -> None:
    """matplotlib made unimportable (tests/support/nomatplotlib.py) for benchd, its children
    and benchctl: reports that must be drawn are refused by name (501, exit 11); everything
    else works, the stored report.html included."""
    nomp = str(blocker_dir(tmp_path))
    d = daemon_factory(env={"PYTHONPATH": os.pathsep.join([nomp, str(REPO)])})
    _runs(d, template)
    results = d.root / "results"
    (results / BASE / REPORT_FILE).write_bytes((template / REPORT_FILE).read_bytes())
    r = d.get(f"/api/results/{SAME}/report.html", timeout=120)
    assert r.status == 501 and r.error["code"] == "plots_unavailable"
    assert "matplotlib is not installed" in r.error["message"]
    assert d.get(f"/api/results/{BASE}/report.html", timeout=60).status == 200  # stored one
    out = bc(d, "results", SAME, "--html", timeout=120)
    assert out.returncode == 11 and "matplotlib" in out.stderr and out.stdout == ""
    blocked = {"PYTHONPATH": os.pathsep.join([nomp, str(REPO)])}
    cmp_html = bc(d, "compare", BASE, SLOW, "--html", timeout=150, **blocked)
    assert cmp_html.returncode == 11 and "matplotlib is not installed" in cmp_html.stderr
    assert bc(d, "trend", "gmst_era", "--html", **blocked).returncode == 11
    plain = bc(d, "compare", BASE, SLOW, timeout=150, **blocked)   # no plot needed: works
    assert plain.returncode == 1 and "REGRESSION" in plain.stdout
    assert d.get("/api/health").status == 200

"""What is added to a run in the instant before it is published, and never changed after:
the regression verdict against the newest earlier comparable run (Manifest.regression) and
report.html. Neither may stop a run from being published: a check that fails is recorded as
`not_checked` with its reason, a report that cannot be drawn (no matplotlib) is left out and
the orchestrator says so (benchd renders it on request later)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline import loader, schema
from pipeline.atomicio import write_bytes_atomic


def before_publish(results_dir: Path, staged_dir: Path, manifest: schema.Manifest,
                   say: Callable[[str], None]) -> None:
    """Set manifest.regression and write staged_dir/report.html (atomically)."""
    try:
        detail = loader.detail_of_dir(staged_dir, manifest)
        from pipeline import compare
        manifest.regression = compare.regression_check(results_dir, detail)
    except Exception as e:   # the check is advice: the run is published regardless
        manifest.regression = schema.RegressionCheck(
            verdict=schema.VERDICT_NOT_CHECKED, reason=f"{type(e).__name__}: {e}")
    _say_verdict(manifest.regression, say)
    from pipeline.report import REPORT_FILE, PlotsUnavailable, use_lab_cache
    use_lab_cache(results_dir.parent)
    try:
        from pipeline.report.run_report import render_run
        html = render_run(loader.detail_of_dir(staged_dir, manifest))
        write_bytes_atomic(staged_dir / REPORT_FILE, html.encode("utf-8"))
    except PlotsUnavailable as e:
        say(f"pipeline: {REPORT_FILE} not written: {e}")
    except Exception as e:   # a plotting bug (or a full disk) must not cost the run
        say(f"pipeline: {REPORT_FILE} not written: {type(e).__name__}: {e}")


def _say_verdict(reg: schema.RegressionCheck, say: Callable[[str], None]) -> None:
    text = f"pipeline: regression check: {reg.verdict}"
    if reg.base_run_id:
        text += f" against {reg.base_run_id}"
    if reg.rows:
        text += " — " + ", ".join(f"{r.experiment}/{r.library} ({', '.join(r.regressions)})"
                                  for r in reg.rows)
    if reg.reason:
        text += f" ({reg.reason})"
    say(text)

"""HTML reports with plots: a run's report.html, a compare report, a trend report.

One module per job: plots.py draws (matplotlib, Agg, SVG), page.py lays out the self-contained
HTML, run_report.py / compare_report.py / trend_report.py build each kind. Each report is one
file with its plots inline as SVG: no network, no script, readable offline, and the same
input always gives the same bytes (fixed SVG hash salt, no dates, no timestamps).

matplotlib is optional at run time: without it every renderer raises PlotsUnavailable (the
CLI says so and exits NO_PLOTS, benchd answers 501 `plots_unavailable`, the orchestrator
publishes the run without report.html and says why).
"""
from __future__ import annotations

REPORT_FILE = "report.html"


class PlotsUnavailable(RuntimeError):
    """matplotlib cannot be imported here: no report can be drawn."""


def plots_available() -> bool:
    """Whether matplotlib can be imported (imports it: call only on a report path)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True

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

import os
from pathlib import Path

REPORT_FILE = "report.html"
MPL_CACHE = ".cache/matplotlib"   # under the lab root: matplotlib's config and font cache


def use_lab_cache(lab_root: Path) -> None:
    """Point matplotlib's config/font cache at the lab root when MPLCONFIGDIR is unset and
    there is no writable home (the service's sandbox): a font cache rebuilt in a temporary
    directory at every report costs seconds. A person's own run keeps matplotlib's default."""
    if "MPLCONFIGDIR" not in os.environ and not os.access(os.path.expanduser("~"), os.W_OK):
        os.environ["MPLCONFIGDIR"] = str(Path(lab_root) / MPL_CACHE)


class PlotsUnavailable(RuntimeError):
    """matplotlib cannot be imported here: no report can be drawn."""


def plots_available() -> bool:
    """Whether matplotlib can be imported (imports it: call only on a report path)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True

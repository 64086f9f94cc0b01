"""Compute a comparison or draw a report in a child interpreter, for benchd.

benchd runs `python -m pipeline.reportjob ...` per request (as it describes experiments):
scipy and matplotlib are then imported, used and freed with the child, so the daemon's
resident memory does not grow by their ~100 MB and its event loop never waits on them.
The body goes to stdout; errors to stderr (one line) with an exit code benchd maps:

    python -m pipeline.reportjob compare RESULTS_DIR BASE HEAD THRESHOLD ERROR_TOLERANCE
    python -m pipeline.reportjob report RESULTS_DIR RUN_ID      # report.html of a run
"""
from __future__ import annotations

import sys
from pathlib import Path

import msgspec

EXIT_OK, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_NO_PLOTS = 0, 2, 3, 4


def _compare(results_dir: Path, base: str, head: str, threshold: str, tolerance: str) -> bytes:
    from pipeline import compare, loader
    try:
        thr, tol = float(threshold), float(tolerance)
    except ValueError:
        raise compare.CompareError(f"threshold: not a number: {threshold!r}") from None
    compare.check_parameters(thr, tol)
    b = loader.load_run(results_dir, loader.resolve_run_id(results_dir, base))
    h = loader.load_run(results_dir, loader.resolve_run_id(results_dir, head))
    return msgspec.json.encode(compare.compare(b, h, threshold=thr, error_tolerance=tol))


def _report(results_dir: Path, run_id: str) -> bytes:
    from pipeline import loader
    from pipeline.report.run_report import render_run
    return render_run(loader.load_run(results_dir, run_id)).encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from pipeline import loader
    from pipeline.compare import CompareError
    from pipeline.report import PlotsUnavailable
    try:
        if len(args) == 6 and args[0] == "compare":
            out = _compare(Path(args[1]), *args[2:])
        elif len(args) == 3 and args[0] == "report":
            out = _report(Path(args[1]), args[2])
        else:
            sys.stderr.write(f"usage: {__doc__}\n")
            return EXIT_INVALID
    except (loader.AmbiguousRunError, CompareError) as e:
        sys.stderr.write(f"{e}\n")
        return EXIT_INVALID
    except loader.RunNotFoundError as e:     # also "not a run id", as GET /api/results/{run}
        sys.stderr.write(f"{e}\n")
        return EXIT_NOT_FOUND
    except PlotsUnavailable as e:
        sys.stderr.write(f"{e}\n")
        return EXIT_NO_PLOTS
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

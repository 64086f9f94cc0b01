"""An orchestrator stand-in that floods its log: for the load and full-disk tests.

    benchd --orchestrator '["python", "tests/hostile/firehose.py", "--rate", "5000",
                            "--seconds", "30"]'

benchd appends the real pipeline argv (--experiments ... --results-dir DIR); it is accepted
and only --results-dir is used. Lines are written on a schedule (`rate` lines per second,
in one write(2) per 5 ms batch, so the pace holds on a busy machine), each numbered so a
reader can check order and completeness; a pipeline progress line every second.
--fill-results BYTES also writes a results file of that size, chunk by chunk, the way the
pipeline stages a run (stage dir, then rename into place), to fill a results filesystem.
On a write error (ENOSPC) it reports on stderr (which may fail too) and exits 28.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline import progress  # noqa: E402  (stdlib only)

PAYLOAD = "x" * 60
EXIT_NOSPACE = 28


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _line(i: int) -> bytes:
    return f"{i:09d} {PAYLOAD}\n".encode()


def flood(rate: float, seconds: float, total_lines: int | None) -> int:
    """Write lines on schedule; returns how many were written."""
    start = time.monotonic()
    written = 0
    next_progress = 1.0
    limit = total_lines if total_lines is not None else int(rate * seconds)
    while written < limit:
        elapsed = time.monotonic() - start
        due = limit if rate <= 0 else min(limit, int(elapsed * rate) + 1)
        if due > written:
            _write_all(1, b"".join(_line(i) for i in range(written, due)))
            written = due
        if elapsed >= next_progress:
            progress.emit("perf", run_id="firehose", k=1, total=1, experiment="firehose")
            sys.stdout.flush()
            next_progress += 1.0
        if written < limit and rate > 0:
            time.sleep(0.005)
    return written


def fill_results(results_dir: Path, size: int) -> None:
    """Stage a run the way the pipeline does, then publish it with one rename."""
    stage = results_dir / ".staging-firehose"
    stage.mkdir(parents=True, exist_ok=True)
    chunk = b"r" * 65536
    with open(stage / "results.bin", "wb") as f:
        left = size
        while left > 0:
            f.write(chunk[:left])
            left -= len(chunk)
        f.flush()
        os.fsync(f.fileno())
    os.rename(stage, results_dir / "firehose-run")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="firehose")
    p.add_argument("--rate", type=float, default=5000.0, help="lines per second (0: flat out)")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--lines", type=int, default=None, help="exactly this many lines")
    p.add_argument("--fill-results", type=int, default=0, metavar="BYTES")
    p.add_argument("--results-dir", type=Path, default=None)
    a, _pipeline_args = p.parse_known_args(argv)
    print(f"firehose pid {os.getpid()}: {a.rate:g} lines/s for {a.seconds:g} s", flush=True)
    try:
        n = flood(a.rate, a.seconds, a.lines)
        if a.fill_results:
            fill_results(a.results_dir, a.fill_results)
        print(f"firehose done: {n} lines", flush=True)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        try:
            os.write(2, f"firehose: {e}\n".encode())
        except OSError:
            pass
        return EXIT_NOSPACE
    return 0


if __name__ == "__main__":
    sys.exit(main())

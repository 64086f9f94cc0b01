"""Machine-readable progress lines on the orchestrator's stdout.

Format (one line each, flushed): the prefix `@@benchd-progress ` then one JSON object with
  run_id: str, k: int (1-based experiment index), total: int, experiment: str|null,
  adapter: str|null, phase: str  — one of PHASES —, and for phase "published" run_dir: str
  (relative to the results dir's parent when possible, else absolute) and regression: the
  run's schema.RegressionCheck as JSON ({"verdict", "base_run_id", "rows", ...}: what a
  notification about a regression is built from).
A supervisor (benchd) scans the job log for these to show "3/9 experiments · gmst_era".
Stdlib only: benchd parses them without importing the pipeline's numeric code.
"""
from __future__ import annotations

import json
import sys
from typing import Any, TextIO

PREFIX = "@@benchd-progress "
PHASES = ("start", "inputs", "reference", "adapter", "accuracy", "perf", "checkpoint",
          "experiment_done", "published", "interrupted", "failed", "checkpointed")


def emit(phase: str, *, run_id: str, k: int, total: int, experiment: str | None = None,
         adapter: str | None = None, stream: TextIO | None = None, **extra: Any) -> None:
    """Write one progress line and flush it."""
    if phase not in PHASES:
        raise ValueError(f"unknown progress phase {phase!r}")
    obj = {"run_id": run_id, "k": k, "total": total, "experiment": experiment,
           "adapter": adapter, "phase": phase, **extra}
    out = stream or sys.stdout
    out.write(PREFIX + json.dumps(obj, separators=(",", ":")) + "\n")
    out.flush()


def parse_line(line: str | bytes) -> dict[str, Any] | None:
    """The progress object of a log line, or None when it is not a (valid) progress line."""
    if isinstance(line, bytes):
        if not line.startswith(PREFIX.encode()):
            return None
        line = line.decode("utf-8", "replace")
    if not line.startswith(PREFIX):
        return None
    try:
        obj = json.loads(line[len(PREFIX):])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "phase" in obj else None

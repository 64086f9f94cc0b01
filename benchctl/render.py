"""How benchctl shows things to a person: colour, tables, durations, the progress line.

Colour and control characters only when the stream is a terminal and NO_COLOR is unset
(https://no-color.org); piped output is plain text a script can parse.
"""
from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any, TextIO

from benchd.states import JobState

_RESET = "\x1b[0m"


def _orange() -> str:
    """Orange where the terminal has 256 colours (nearly all do), else the nearest of the 8."""
    many = "256color" in os.environ.get("TERM", "") or os.environ.get("COLORTERM")
    return "\x1b[38;5;208m" if many else "\x1b[33m"


STATE_STYLE: dict[str, str] = {
    JobState.COMPLETED: "\x1b[32m",       # green
    JobState.FAILED: "\x1b[31m",          # red
    JobState.CANCELLED: _orange(),        # orange (yellow on an 8-colour terminal)
    JobState.UNKNOWN: "\x1b[35;7m",       # magenta, inverse: unknown is not a plain failure
    JobState.RUNNING: "\x1b[36m",         # cyan
    JobState.STARTING: "\x1b[2;36m",      # dim cyan
    JobState.QUEUED: "\x1b[2m",           # dim: waiting
    JobState.PAUSED: "\x1b[33m",          # yellow: held
    JobState.PREEMPTED: "\x1b[2;33m",     # dim yellow: waiting again
}
BOLD = "\x1b[1m"
DIM = "\x1b[2m"


def is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def use_colour(stream: TextIO) -> bool:
    return is_tty(stream) and not os.environ.get("NO_COLOR")


def paint(text: str, style: str | None, colour: bool) -> str:
    return f"{style}{text}{_RESET}" if colour and style else text


def state_label(status: str) -> str:
    """'unknown' also gets a '?' so it stands out without colour too."""
    return f"{status}?" if status == JobState.UNKNOWN else status


def parse_time(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def short_time(ts: str | None) -> str:
    """'2026-11-28 04:15:18' in UTC (what people compare with logs and run ids)."""
    dt = parse_time(ts)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if dt else "-"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def job_duration(job: dict[str, Any]) -> float | None:
    """Run time: started -> finished, or -> now while it runs."""
    start = parse_time(job.get("started_at")) or parse_time(job.get("created_at"))
    if start is None:
        return None
    end = parse_time(job.get("finished_at"))
    if end is None:
        if job.get("status") not in (JobState.STARTING, JobState.RUNNING):
            return None
        end = datetime.now(timezone.utc)
    return max(0.0, (end - start).total_seconds())


def experiments_text(config: dict[str, Any]) -> str:
    if config.get("resume"):
        return f"resume {config['resume']}"
    exps = config.get("experiments")
    return ",".join(exps) if exps else "all"


def n_text(config: dict[str, Any], progress: dict[str, Any] | None = None) -> str:
    """The N a job runs with: from its progress once the run has said, else as requested."""
    if progress and progress.get("n") is not None:
        return str(progress["n"])
    if config.get("resume"):
        return "stored"   # the staged run's own n, known once the run starts
    n = config.get("n")
    if n is not None:
        return str(n)
    return "ci" if config.get("ci") else "default"


_PHASES_SHOWN = ("inputs", "reference", "accuracy", "perf", "interrupted", "failed")


def progress_text(progress: dict[str, Any] | None) -> str:
    """'3/9 experiments · frame_rotation_bpn' (adapter and phase when known)."""
    if not progress or not progress.get("total"):
        return ""
    text = f"{progress.get('k', 0)}/{progress['total']} experiments"
    if progress.get("experiment"):
        text += f" · {progress['experiment']}"
    if progress.get("adapter"):
        text += f" · {progress['adapter']}"
    if progress.get("phase") in _PHASES_SHOWN:
        text += f" ({progress['phase']})"
    return text


def table(headers: list[str], rows: list[list[str]], styles: list[list[str | None]] | None,
          colour: bool) -> str:
    """Left-aligned columns, two spaces apart; styles per cell (colour only)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    out = ["  ".join(paint(h.ljust(widths[i]), BOLD, colour)
                     for i, h in enumerate(headers)).rstrip()]
    for r, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            style = styles[r][i] if styles else None
            padded = cell.ljust(widths[i]) if i < len(row) - 1 else cell
            cells.append(paint(padded, style, colour))
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def results_text(job: dict[str, Any]) -> str:
    """The published run (results/<id>), or `<id> (staged)` for the unpublished run a failed
    or cancelled job left, or '-'."""
    if job.get("run_dir"):
        return job["run_dir"]
    return f"{job['staged_run']} (staged)" if job.get("staged_run") else "-"


def job_rows(jobs: list[dict[str, Any]], colour: bool) -> str:
    """The history table."""
    headers = ["ID", "STATE", "STARTED", "DURATION", "EXPERIMENTS", "N", "LABEL", "WHO",
               "RESULTS"]
    rows, styles = [], []
    for job in jobs:
        cfg = job.get("config") or {}
        status = job.get("status", "?")
        rows.append([job.get("job_id", "?"), state_label(status),
                     short_time(job.get("started_at") or job.get("created_at")),
                     duration(job_duration(job)), experiments_text(cfg),
                     n_text(cfg, job.get("progress")), cfg.get("label") or "-",
                     job.get("requester_name") or str(job.get("requester_uid", "?")),
                     results_text(job)])
        styles.append([None, STATE_STYLE.get(status), None, None, None, None, None, None,
                       None])
    return table(headers, rows, styles, colour)


def job_detail(job: dict[str, Any], colour: bool) -> str:
    """`status JOB`: one field a line."""
    cfg = job.get("config") or {}
    status = job.get("status", "?")
    lines = [("job", job.get("job_id", "?")),
             ("state", paint(state_label(status), STATE_STYLE.get(status), colour))]
    prog = progress_text(job.get("progress"))
    if prog and status in (JobState.STARTING, JobState.RUNNING):
        lines.append(("progress", prog))
    lines += [("requested by", f"{job.get('requester_name')} (uid {job.get('requester_uid')})"),
              ("created", short_time(job.get("created_at"))),
              ("started", short_time(job.get("started_at"))),
              ("finished", short_time(job.get("finished_at"))),
              ("duration", duration(job_duration(job))),
              ("experiments", experiments_text(cfg)),
              ("n", n_text(cfg, job.get("progress")))]
    if cfg.get("label"):
        lines.append(("label", cfg["label"]))
    for key in ("seed", "perf_rounds"):
        if cfg.get(key) is not None:
            lines.append((key.replace("_", " "), str(cfg[key])))
    flags = [f for f in ("no_perf", "ci") if cfg.get(f)]
    if flags:
        lines.append(("flags", " ".join("--" + f.replace("_", "-") for f in flags)))
    if job.get("exit_code") is not None:
        lines.append(("exit code", str(job["exit_code"])))
    if job.get("signal"):
        lines.append(("signal", job["signal"]))
    if job.get("reason"):
        lines.append(("reason", job["reason"]))
    if job.get("run_dir") or job.get("staged_run"):
        lines.append(("results", results_text(job)))
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in lines)


def final_line(job: dict[str, Any], colour: bool) -> str:
    """One line saying how a job ended (stderr after --follow/--wait, and after cancel)."""
    status = job.get("status", "?")
    text = f"job {job.get('job_id')} {paint(state_label(status), STATE_STYLE.get(status), colour)}"
    extra = []
    reason = job.get("reason") or ""
    if job.get("exit_code") is not None and f"code {job['exit_code']}" not in reason:
        extra.append(f"exit code {job['exit_code']}")
    if job.get("signal"):
        extra.append(job["signal"])
    if job.get("reason"):
        extra.append(job["reason"])
    if job.get("run_dir") or job.get("staged_run"):
        extra.append(f"results {results_text(job)}")
    return text + (f" ({'; '.join(extra)})" if extra else "")


class StatusLine:
    """A single redrawn line at the bottom of a terminal (progress); no-op elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = is_tty(stream)
        self.text = ""
        self._shown = False

    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        return columns if columns > 0 else 80  # a fresh pty may report 0 columns

    def clear(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = False

    def show(self) -> None:
        if self.enabled and self.text:
            self.stream.write("\r\x1b[K" + self.text[: max(10, self._width() - 1)])
            self._shown = True
            self.stream.flush()

    def set(self, text: str) -> None:
        self.text = text
        self.show()


def err(message: str) -> None:
    sys.stderr.write(f"benchctl: {message}\n")
    sys.stderr.flush()

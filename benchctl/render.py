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

from benchd.states import ACTIVE, JobState

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
    JobState.PAUSING: "\x1b[36;2m",       # running (dim cyan): stopping to be kept
    JobState.PREEMPTING: "\x1b[36;2m",
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


def short_time(ts: str | None, human: bool = False) -> str:
    """A time for a person or a script. Piped (human=False): ISO 8601 UTC with Z,
    '2026-11-28T04:15:18Z' (one word, sortable, zone-proof). On a terminal: local time
    (TZ honoured) with its zone, '2026-11-28 05:15:18 CET'."""
    dt = parse_time(ts)
    if dt is None:
        return "-"
    if not human:
        return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    local = dt.astimezone()     # the C library's local zone: honours TZ
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or local.strftime("%z"))


def ago(ts: str | None, now: datetime | None = None) -> str:
    """'5 min ago', '3 h ago', '2 days ago' (history on a terminal); a date past 30 days."""
    dt = parse_time(ts)
    if dt is None:
        return "-"
    secs = ((now or datetime.now(timezone.utc)) - dt).total_seconds()
    if secs < 0:
        return short_time(ts, True)
    if secs < 60:
        return "just now" if secs < 10 else f"{int(secs)} s ago"
    if secs < 3600:
        return f"{int(secs // 60)} min ago"
    if secs < 86400:
        return f"{int(secs // 3600)} h ago"
    if secs < 86400 * 30:
        days = int(secs // 86400)
        return f"{days} day{'s' if days > 1 else ''} ago"
    return dt.astimezone().strftime("%Y-%m-%d")


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
        if job.get("status") not in ACTIVE:
            return None
        end = datetime.now(timezone.utc)
    return max(0.0, (end - start).total_seconds())


def experiments_text(config: dict[str, Any]) -> str:
    if config.get("resume"):
        return f"resume {config['resume']}"
    exps = config.get("experiments")
    return ",".join(exps) if exps else "all"


def experiments_cell(config: dict[str, Any], fit: bool) -> str | list[str]:
    """For a table: the list (fitted as a list); 'all' when none was given, or on a terminal
    (`fit`) when it names every experiment (piped output stays complete)."""
    exps = config.get("experiments")
    if config.get("resume") or not exps:
        return experiments_text(config)
    return "all" if fit and is_all(exps) else list(exps)


def is_all(names: list[str] | tuple[str, ...]) -> bool:
    """Every experiment of the catalog (imported only for a list that might be: start-up)."""
    if len(names) < 2:
        return False
    from pipeline.catalog import EXPERIMENTS
    return set(names) >= set(EXPERIMENTS)


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


_PHASES_SHOWN = ("inputs", "reference", "accuracy", "perf", "interrupted", "failed",
                 "checkpointed")


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


class Out:
    """How output reaches its reader: colour, the terminal's width (None: never cut) and
    whether a person reads it (local times; a pipe gets ISO UTC)."""

    def __init__(self, colour: bool = False, width: int | None = None,
                 human: bool = False) -> None:
        self.colour, self.width, self.human = colour, width, human

    @classmethod
    def of(cls, stream: TextIO) -> "Out":
        tty = is_tty(stream)
        return cls(use_colour(stream), terminal_width(stream) if tty else None, tty)


def terminal_width(stream: TextIO) -> int:
    """Columns of the terminal: $COLUMNS if set (as shutil does), else the tty's, else 80."""
    try:
        cols = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        try:
            cols = os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            cols = 0
    return cols if cols > 0 else 80   # a fresh pty may report 0 columns


ELLIPSIS = "…"
MIN_COL = 4   # a column is never cut narrower than this (or its header)
LIST_MIN = 16  # a list column keeps 'first_name +N' up to this width while others give way


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters, ending in … when cut."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ELLIPSIS if width > 0 else ""


def short_list(items: list[str] | tuple[str, ...], width: int | None, sep: str = ",") -> str:
    """'a,b,c' whole if it fits (or width is None), else as many as fit and '+N' for the
    rest: 'gmst_era +3'; the first name is cut with … if even that does not fit."""
    full = sep.join(items)
    if width is None or len(full) <= width:
        return full
    for k in range(len(items) - 1, 0, -1):
        text = f"{sep.join(items[:k])} +{len(items) - k}"
        if len(text) <= width:
            return text
    rest = f" +{len(items) - 1}" if len(items) > 1 else ""
    return cut(items[0], max(1, width - len(rest))) + rest


def fit_widths(natural: list[int], minimum: list[int], width: int) -> list[int]:
    """Column widths summing (with 2-space gaps) to at most `width`: the widest columns give
    way first, none below its minimum (the table may then still be wider: it wraps)."""
    widths = list(natural)
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    while excess > 0:
        # the widest that can give way; of equals, the rightmost (less important) one
        i = max(range(len(widths)), key=lambda j: (widths[j] > minimum[j], widths[j], j))
        if widths[i] <= minimum[i]:
            break
        # take from the widest down to the next-widest in one step
        others = [w for j, w in enumerate(widths) if j != i and w > minimum[j]]
        target = max(minimum[i], (max(others) if others else 0), widths[i] - excess)
        if target >= widths[i]:
            target = widths[i] - 1
        excess -= widths[i] - target
        widths[i] = target
    return widths


def table(headers: list[str], rows: list[list[Any]], styles: list[list[str | None]] | None,
          colour: bool, width: int | None = None, keep: tuple[int, ...] = ()) -> str:
    """Left-aligned columns, two spaces apart; styles per cell (colour only). With `width`
    (a terminal's), the table is fitted to it: list cells become 'first +N', long cells end
    in …; the columns in `keep` (ids, states: what a person copies or scans) are never cut.
    Every table benchctl prints goes through here; piped output (width None) is whole."""
    text_rows = [[c if isinstance(c, str) else ",".join(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    if width is not None:
        # first cells give way down to their header's width (a list: to 'first +N'), then
        # headers and lists too, down to MIN_COL
        lists = [0] * len(headers)
        for row in rows:
            for i, c in enumerate(row):
                if not isinstance(c, str) and len(c) > 1:
                    lists[i] = max(lists[i], min(LIST_MIN, len(c[0]) + len(f" +{len(c) - 1}")))
        for floor in ((lambda i, h: max(len(h), MIN_COL, lists[i])), (lambda i, h: MIN_COL)):
            minimum = [w if i in keep else min(w, floor(i, h))
                       for i, (w, h) in enumerate(zip(widths, headers))]
            widths = fit_widths(widths, minimum, width)
        text_rows = [[short_list(c, widths[i]) if not isinstance(c, str) else cut(c, widths[i])
                      for i, c in enumerate(row)] for row in rows]
    out = ["  ".join(paint(cut(h, widths[i]).ljust(widths[i]), BOLD, colour)
                     for i, h in enumerate(headers)).rstrip()]
    for r, row in enumerate(text_rows):
        cells = []
        for i, cell in enumerate(row):
            style = styles[r][i] if styles else None
            padded = cell.ljust(widths[i]) if i < len(row) - 1 else cell
            cells.append(paint(padded, style, colour))
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def results_text(job: dict[str, Any], out: Out | None = None) -> str:
    """The published run (results/<id> piped, its id on a terminal), `<id> (staged)` for the
    unpublished run a failed or cancelled job left, or '-'; `(deleted)` once retention
    removed it."""
    if job.get("run_dir"):
        text = _run_dir_text(job["run_dir"], out) if out is not None else job["run_dir"]
        return text + (" (deleted)" if job.get("run_removed") else "")
    return f"{job['staged_run']} (staged)" if job.get("staged_run") else "-"


WIDE = 140   # a terminal at least this wide also gets history's CPUS/CPU-TIME/PEAK-MEM


def job_rows(jobs: list[dict[str, Any]], out: Out) -> str:
    """The history table (STARTED relative on a terminal: '5 min ago')."""
    headers = ["ID", "STATE", "STARTED", "DURATION", "EXPERIMENTS", "N", "LABEL", "WHO",
               "RESULTS"]
    rows, styles = [], []
    for job in jobs:
        cfg = job.get("config") or {}
        status = job.get("status", "?")
        started = job.get("started_at") or job.get("created_at")
        rows.append([job.get("job_id", "?"), state_label(status),
                     ago(started) if out.human else short_time(started),
                     duration(job_duration(job)), experiments_cell(cfg, out.width is not None),
                     n_text(cfg, job.get("progress")), cfg.get("label") or "-",
                     job.get("requester_name") or str(job.get("requester_uid", "?")),
                     results_text(job, out)])
        styles.append([None, STATE_STYLE.get(status), None, None, None, None, None, None,
                       None])
    if any(job.get("slurm_job_id") for job in jobs):   # --executor slurm: its batch job
        headers.append("SLURM")
        for row, style, job in zip(rows, styles, jobs):
            row.append(job.get("slurm_job_id") or "-")
            style.append(None)
    if any(job.get("notify_status") for job in jobs):   # only where someone asked for them
        headers.append("NOTIFY")
        for row, style, job in zip(rows, styles, jobs):
            row.append(job.get("notify_status") or "-")
            style.append(None)
    if any(job.get("cpuset") for job in jobs) \
            and (out.width is None or out.width >= WIDE):  # jobs with CPU sets (issue 12)
        at = headers.index("RESULTS")   # before it: RESULTS stays last, as scripts expect
        headers[at:at] = ["CPUS", "CPU-TIME", "PEAK-MEM"]
        for row, style, job in zip(rows, styles, jobs):
            row[at:at] = [cpus_text(job), cpu_time_text(job),
                          memory_text(job.get("peak_memory_bytes"))]
            style[at:at] = [None, None, None]
    if out.width is not None and not any((j.get("config") or {}).get("label") for j in jobs):
        drop_column(headers, rows, styles, "LABEL")   # on a terminal, no room for dashes
    return table(headers, rows, styles, out.colour, out.width, keep=(0, 1))


def cpus_text(job: dict[str, Any]) -> str:
    """'0-1' (the CPU list it was pinned to), '-' before it had one."""
    from benchd.cpusets import format_cpu_list
    return format_cpu_list(job["cpuset"]) if job.get("cpuset") else "-"


def cpu_time_text(job: dict[str, Any]) -> str:
    """User + system CPU time of all its processes: '12.3s', '-' until it has ended."""
    user, system = job.get("cpu_user_s"), job.get("cpu_sys_s")
    return "-" if user is None or system is None else f"{user + system:.1f}s"


def memory_text(size: int | None) -> str:
    from benchd.sizes import format_size
    return "-" if size is None else format_size(size)


def drop_column(headers: list[str], rows: list[list[Any]],
                styles: list[list[str | None]] | None, name: str) -> None:
    """Remove column `name` (a terminal table leaves out optional columns nobody filled;
    piped output keeps every column, so scripts see a stable layout)."""
    i = headers.index(name)
    del headers[i]
    for row in rows:
        del row[i]
    for style in styles or ():
        del style[i]


def _run_dir_text(run_dir: str | None, out: Out) -> str:
    """Piped: the run's directory as benchd reports it. On a terminal: its run id (what
    `benchctl results RUN` takes), unless it fits whole."""
    if not run_dir:
        return "-"
    return run_dir.rstrip("/").rsplit("/", 1)[-1] if out.width is not None else run_dir


def job_detail(job: dict[str, Any], out: Out) -> str:
    """`status JOB`: one field a line (cut to a terminal's width with …)."""
    colour = out.colour
    cfg = job.get("config") or {}
    status = job.get("status", "?")
    lines = [("job", job.get("job_id", "?")),
             ("state", paint(state_label(status), STATE_STYLE.get(status), colour))]
    prog = progress_text(job.get("progress"))
    if prog and status in ACTIVE:
        lines.append(("progress", prog))
    when = out.human
    lines += [("requested by", f"{job.get('requester_name')} (uid {job.get('requester_uid')})"),
              ("created", short_time(job.get("created_at"), when)),
              ("started", short_time(job.get("started_at"), when)),
              ("finished", short_time(job.get("finished_at"), when)),
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
    if job.get("slurm_job_id"):
        lines.append(("slurm job", f"{job['slurm_job_id']}"
                      + (f" ({job['slurm_state']})" if job.get("slurm_state") else "")))
    if job.get("exit_code") is not None:
        lines.append(("exit code", str(job["exit_code"])))
    if job.get("signal"):
        lines.append(("signal", job["signal"]))
    if job.get("reason"):
        lines.append(("reason", job["reason"]))
    if job.get("run_dir") or job.get("staged_run"):
        lines.append(("results", results_text(job)))
    if job.get("run_removed"):
        lines.append(("results note", job["run_removed"]))
    if job.get("notify_status"):
        lines.append(("notifications", job["notify_status"]))
    targets = cfg.get("notify") or []
    if targets:
        lines.append(("notify", ", ".join(t.get("url", "?") + (f" ({','.join(t['on'])})"
                                                             if t.get("on") else "")
                                          for t in targets)))
    if job.get("cpuset"):
        n = len(job["cpuset"])
        lines.append(("cpus", f"{cpus_text(job)} ({n} thread{'s' if n > 1 else ''} for "
                              f"OpenMP/BLAS)" + (" exclusive" if cfg.get("exclusive") else "")))
    if job.get("memory_limit"):
        lines.append(("memory limit", memory_text(job["memory_limit"])))
    if job.get("cpu_user_s") is not None and job.get("cpu_sys_s") is not None:
        lines.append(("cpu time", f"{cpu_time_text(job)} (user {job['cpu_user_s']:.2f} s, "
                                  f"system {job['cpu_sys_s']:.2f} s)"))
    if job.get("peak_memory_bytes") is not None:
        lines.append(("peak memory", f"{memory_text(job['peak_memory_bytes'])} (largest "
                                     f"process)"))
    width = max(len(k) for k, _ in lines)
    if out.width is not None:   # the state carries colour codes: it is short, never cut
        room = max(MIN_COL, out.width - width - 2)
        lines = [(k, v if k == "state" else cut(v, room)) for k, v in lines]
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in lines)


def final_line(job: dict[str, Any], colour: bool) -> str:
    """One line saying how a job ended (stderr after run --follow/--wait and tail -f, and
    after cancel): 'job 81e2… cancelled by alice after 1m12s (stopped by SIGTERM after 0.4 s)'.
    Each fact once: the state is not repeated from the reason, nor the signal it names."""
    status = job.get("status", "?")
    text = f"job {job.get('job_id')} {paint(state_label(status), STATE_STYLE.get(status), colour)}"
    reason = job.get("reason") or ""
    if reason.startswith(f"{status} by "):      # "cancelled by alice: how" (benchd's)
        who, _, reason = reason[len(status) + 1:].partition(": ")
        text += f" {who}"
    took = job_duration(job)
    if took is not None and job.get("finished_at"):
        text += f" after {duration(took)}"
    extra = []
    if job.get("exit_code") is not None and f"code {job['exit_code']}" not in reason:
        extra.append(f"exit code {job['exit_code']}")
    if job.get("signal") and job["signal"] not in reason:
        extra.append(job["signal"])
    if reason:
        extra.append(reason)
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


def screen_rows(stream: TextIO) -> int:
    """Lines of the terminal: $LINES if set, else the tty's, else 24."""
    try:
        rows = int(os.environ.get("LINES", ""))
    except ValueError:
        try:
            rows = os.get_terminal_size(stream.fileno()).lines
        except (OSError, ValueError, AttributeError):
            rows = 0
    return rows if rows > 0 else 24


def page(text: str, enabled: bool) -> None:
    """Print `text`; on a terminal, through $PAGER when it is longer than the screen (and
    paging is `enabled`: --no-pager). benchctl.pager is imported only then (start-up)."""
    if not text.endswith("\n"):
        text += "\n"
    if enabled and is_tty(sys.stdout) and text.count("\n") >= screen_rows(sys.stdout):
        from benchctl import pager
        if pager.show(text):
            return
    sys.stdout.write(text)


def err(message: str) -> None:
    sys.stderr.write(f"benchctl: {message}\n")
    sys.stderr.flush()

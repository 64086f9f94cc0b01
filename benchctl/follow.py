"""Follow a job's log over HTTP, surviving benchd restarts without losing or repeating a byte.

The daemon streams `GET .../logs?follow=1` until the job is final and says where the stream
starts (X-Log-Offset). We count the bytes we received; when the connection is cut (benchd
killed or restarted) we reconnect with backoff and ask for `offset=<start + received>`, so the
output is the log file byte for byte. A clean end of stream is only trusted once the job
record says the job is final (a daemon shutting down may end streams early).

Output: piped -> the raw log bytes (progress lines included, for scripts); on a terminal ->
log lines, with `@@benchd-progress` lines drawn as one redrawn progress line instead.
"""
from __future__ import annotations

import sys
import time
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any, BinaryIO

from benchctl import render
from benchctl.client import (Client, NoAnswer, Response, StreamCut, Unreachable, job_path,
                             query, raise_api_error)
from benchctl.exitcodes import INTERNAL, CliError, for_state
from benchd.states import FINAL, JobState

DEFAULT_RECONNECT_S = 60.0
DEFAULT_STALL_S = 60.0      # a follow stream with no byte for this long is requested anew
MAX_SCAN = 10_000   # lines visible_tail reads back at most, looking for enough visible ones
_FINAL = FINAL


class RawSink:
    """Bytes straight through (pipes, files): byte-exact, no control characters added."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.out.flush()

    def notice(self, text: str) -> None:
        render.err(text)

    def close(self) -> None:
        self.out.flush()


class FilterSink:
    """Log lines for a person reading through a pager: progress lines dropped (a pager
    cannot redraw a status line), everything else as is."""

    def __init__(self, out: BinaryIO) -> None:
        from pipeline.progress import parse_line
        self._parse = parse_line
        self.out = out
        self.buf = b""

    def write(self, data: bytes) -> None:
        *lines, self.buf = (self.buf + data).split(b"\n")
        kept = [line + b"\n" for line in lines if self._parse(line) is None]
        if kept:
            self.out.write(b"".join(kept))

    def notice(self, text: str) -> None:
        render.err(text)

    def close(self) -> None:
        if self.buf and self._parse(self.buf) is None:
            self.out.write(self.buf + b"\n")
        self.buf = b""


class NullSink:
    """For --wait: follow to the end, show nothing."""

    def write(self, data: bytes) -> None:
        pass

    def notice(self, text: str) -> None:
        render.err(text)

    def close(self) -> None:
        pass


class TerminalSink:
    """Complete lines to the terminal; progress lines become the bottom status line."""

    def __init__(self, out: BinaryIO, status: render.StatusLine,
                 progress: dict[str, Any] | None = None, timing: Timing | None = None,
                 ) -> None:
        # pipeline.progress is stdlib-only and defines the line format: reuse it rather than
        # copy it (imported only here, when a terminal needs the progress line).
        from pipeline.progress import parse_line
        self._parse = parse_line
        self.out = out
        self.status = status
        self.timing = timing
        self.progress = progress
        self.buf = b""
        if progress:
            status.set(self._line())

    def _line(self) -> str:
        text = render.progress_text(self.progress)
        if text and self.timing is not None:
            text += self.timing.text()
        return text

    def write(self, data: bytes) -> None:
        self.buf += data
        if b"\n" not in self.buf:
            return
        *lines, self.buf = self.buf.split(b"\n")
        text = []
        for line in lines:
            prog = self._parse(line)
            if prog is not None:
                self.progress = prog
            else:
                text.append(line + b"\n")
        self.status.text = self._line()
        self.status.clear()
        self.status.stream.flush()
        if text:
            self.out.write(b"".join(text))
            self.out.flush()
        self.status.show()

    def notice(self, text: str) -> None:
        self.status.clear()
        self.status.stream.flush()
        render.err(text)
        self.status.show()

    def close(self) -> None:
        self.status.clear()
        self.status.stream.flush()
        if self.buf:
            self.out.write(self.buf if self.buf.endswith(b"\n") else self.buf + b"\n")
            self.buf = b""
        self.out.flush()


class Timing:
    """' · 1m12s elapsed · ETA 2m30s' for the progress line. The ETA comes from the median
    run time of earlier comparable jobs (same experiments and n, completed); none when there
    is no such job or the job already ran longer than that (no ETA rather than a wrong one)."""

    def __init__(self, started_at: str | None, expected_s: float | None) -> None:
        self.started = render.parse_time(started_at)
        self.expected_s = expected_s

    def text(self) -> str:
        if self.started is None:
            return ""
        from datetime import datetime, timezone
        elapsed = max(0.0, (datetime.now(timezone.utc) - self.started).total_seconds())
        text = f" · {render.duration(elapsed)} elapsed"
        if self.expected_s is not None and self.expected_s > elapsed:
            text += f" · ETA {render.duration(self.expected_s - elapsed)}"
        return text


def _comparable(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same experiments (none given = all) and the same n (with --ci's default n)."""
    def key(cfg: dict[str, Any]) -> tuple:
        exps = cfg.get("experiments")
        return (tuple(sorted(exps)) if exps and not render.is_all(exps) else "all",
                cfg.get("n"), bool(cfg.get("ci")) if cfg.get("n") is None else None)
    return not a.get("resume") and not b.get("resume") and key(a) == key(b)


HISTORY_FOR_ETA = 200   # completed jobs looked at for comparable run times


def expected_duration(client: Client, job: dict[str, Any]) -> float | None:
    """Median run time of earlier completed jobs like `job`, asked once at start; None when
    there is none or benchd cannot say (an ETA is a nicety: never an error)."""
    import statistics
    cfg = job.get("config") or {}
    try:
        jobs = client.call("GET", "/api/benchmark/jobs" + query(
            status=JobState.COMPLETED.value, limit=HISTORY_FOR_ETA))["jobs"]
    except Exception:   # noqa: BLE001 - any failure just means no ETA
        return None
    took = [render.job_duration(j) for j in jobs
            if j.get("job_id") != job.get("job_id") and _comparable(cfg, j.get("config") or {})]
    took = [t for t in took if t is not None]
    return statistics.median(took) if took else None


def make_sink(progress: dict[str, Any] | None = None, client: Client | None = None,
              job: dict[str, Any] | None = None) -> RawSink | TerminalSink:
    """Raw bytes for a pipe; for a terminal, the progress line (with elapsed time and an ETA
    when `client` and `job` are given: the follow modes)."""
    out = sys.stdout.buffer
    if render.is_tty(sys.stdout):
        timing = None
        if client is not None and job is not None:
            timing = Timing(job.get("started_at") or job.get("created_at"),
                            expected_duration(client, job))
        return TerminalSink(out, render.StatusLine(sys.stdout), progress, timing)
    return RawSink(out)


def _log_offset(resp: Response) -> int:
    """The byte offset a log answer starts at (its X-Log-Offset header)."""
    try:
        return int(resp.headers["x-log-offset"])
    except (KeyError, ValueError):
        resp.close()
        raise CliError("benchd did not say where the log starts (X-Log-Offset)",
                       INTERNAL) from None


def visible_tail(client: Client, job_id: str, lines: int) -> tuple[int, bytes]:
    """Where the last `lines` lines a terminal shows start, and the log from there. A
    terminal draws progress lines as the status line, so `tail=lines` would show fewer; this
    asks for 4x more lines until enough are visible (or the log's start, or MAX_SCAN). The
    server's tail counts \n-ended lines too, so the two agree on where lines start."""
    from pipeline.progress import parse_line   # what TerminalSink draws rather than prints
    ask = max(lines, 1)
    while True:
        resp = client.open("GET", job_path(job_id, "/logs") + query(tail=ask))
        if resp.status >= 400:
            raise_api_error(resp.status, resp.read())
        start = _log_offset(resp)
        data = resp.read()
        off, seen = start + len(data), 0
        pieces = data.split(b"\n")   # lines as TerminalSink splits them: on \n only
        if pieces[-1] == b"":
            pieces.pop()
        for i in range(len(pieces) - 1, -1, -1):
            if seen == lines:
                break
            off -= len(pieces[i]) + (i < len(pieces) - 1 or data.endswith(b"\n"))
            seen += parse_line(pieces[i]) is None
        if seen == lines or start == 0 or ask >= MAX_SCAN:
            return off, data[off - start:]
        ask *= 4


def follow(client: Client, job_id: str, sink: RawSink | TerminalSink | NullSink, *,
           offset: int | None = None, tail: int | None = None,
           reconnect_s: float = DEFAULT_RECONNECT_S,
           stall_s: float = DEFAULT_STALL_S) -> dict[str, Any]:
    """Stream the log into `sink` until the job is final; return the final job record.

    Starts at `offset`, or `tail` lines before the end, or the beginning. A stream silent for
    `stall_s` is asked for again from the byte reached (a quiet job answers at once; a frozen
    benchd does not, and counts as unreachable). Raises Unreachable when benchd stays away
    or silent longer than `reconnect_s`, ApiError for error answers.
    """
    pos: int | None = offset if offset is not None else (None if tail is not None else 0)
    delay, down_since = 0.05, None
    try:
        while True:
            params = {"offset": pos} if pos is not None else {"tail": tail}
            asked = time.monotonic()
            wait = stall_s if down_since is None else \
                max(0.1, min(stall_s, down_since + reconnect_s - asked))
            try:
                resp = client.open("GET", job_path(job_id, "/logs") + query(follow=1, **params),
                                   timeout=wait)
            except (Unreachable, NoAnswer) as exc:
                # benchd is restarting, gone or frozen: a real wait for another process, no
                # event to wait on; give up after `reconnect_s` seconds without it.
                now = time.monotonic()
                if down_since is None:
                    down_since = asked      # the unanswered request's wait counts as down
                    sink.notice(f"lost benchd; reconnecting (for up to {reconnect_s:g} s) to "
                                f"continue at byte {pos if pos is not None else '?'}")
                if now - down_since >= reconnect_s:
                    if isinstance(exc, NoAnswer):   # silent for the whole window: frozen
                        raise Unreachable(client.socket_path, TimeoutError(
                            f"silent for {now - asked:.1f} s")) from None
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if resp.status >= 400:
                raise_api_error(resp.status, resp.read())
            if pos is None:
                pos = _log_offset(resp)
            if down_since is not None:
                sink.notice("reconnected to benchd")
            down_since = None
            resp.set_timeout(stall_s)
            try:
                for chunk in resp.iter_body():
                    sink.write(chunk)
                    pos += len(chunk)
            except (StreamCut, ConnectionError, TimeoutError):
                delay = 0.05
                continue  # benchd went away mid-stream: reconnect from `pos`
            try:
                job = client.call("GET", job_path(job_id))
            except Unreachable:
                continue
            if job.get("status") in _FINAL:
                return job
            # The stream ended but the job runs on (a daemon stopping ends its streams):
            # pause a little so a daemon in that state is not hammered, then resume.
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    finally:
        sink.close()


def report_outcome(final: dict[str, Any]) -> int:
    """After following a job to its end (run --follow/--wait, tail -f): one line on stderr
    saying how it ended, and the exit code of that outcome (benchctl.exitcodes)."""
    sys.stderr.write(render.final_line(final, render.use_colour(sys.stderr)) + "\n")
    sys.stderr.flush()
    return for_state(final.get("status", ""))

"""Long output on a terminal goes through $PAGER (default `less -FRX`), as git does.

Never when stdout is not a terminal, never for the follow modes (they call nothing here);
`--no-pager`, PAGER=cat or an empty PAGER turn it off. Output that fits the screen is written
directly (no pager process at all: the common path stays fast). Imported only when output is
long enough to need it, or by `logs` on a terminal.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys

DEFAULT_PAGER = "less -FRX"   # quit if one screen, keep colours, leave the text on screen


def command() -> list[str] | None:
    """The pager's argv from $BENCHCTL_PAGER, else $PAGER, else less -FRX; None when off."""
    text = os.environ.get("BENCHCTL_PAGER", os.environ.get("PAGER", DEFAULT_PAGER)).strip()
    try:
        argv = shlex.split(text)
    except ValueError:
        return None
    if not argv or argv == ["cat"]:
        return None
    return argv


def open_pager() -> subprocess.Popen[bytes] | None:
    """A started pager reading our output on its stdin; None when there is none to run."""
    argv = command()
    if argv is None:
        return None
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")     # as git: also when PAGER=less without options
    env.setdefault("LV", "-c")
    try:
        return subprocess.Popen(argv, stdin=subprocess.PIPE, env=env)
    except OSError:
        return None


def close_pager(proc: subprocess.Popen[bytes]) -> None:
    """Let the person read to the end: wait for the pager, Ctrl-C is the pager's to handle."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            assert proc.stdin is not None
            proc.stdin.close()
        except BrokenPipeError:   # they quit the pager early: fine
            pass
        proc.wait()
    finally:
        signal.signal(signal.SIGINT, old)


def show(text: str) -> bool:
    """Write `text` through the pager; False when there is none to run (the caller writes
    it itself). render.page decides whether paging is wanted at all."""
    proc = open_pager()
    if proc is None:
        return False
    sys.stdout.flush()
    assert proc.stdin is not None
    try:
        proc.stdin.write(text.encode())
    except BrokenPipeError:   # they quit the pager before the end
        pass
    close_pager(proc)
    return True


class PagedLog:
    """A log for a terminal: held back until it is longer than the screen, then through the
    pager (progress lines dropped: a pager cannot redraw a status line); a shorter one goes
    to `direct` (the terminal sink) when it ends. A pager quit early ends the output quietly."""

    def __init__(self, direct, rows: int) -> None:  # direct: follow.TerminalSink
        self.direct = direct
        self.rows = rows
        self.held = b""
        self.proc: subprocess.Popen[bytes] | None = None
        self.filter = None
        self.gone = False      # the pager was quit, or there is none and `direct` took over

    def write(self, data: bytes) -> None:
        if self.gone:
            return self.direct.write(data) if self.proc is None else None
        if self.filter is None:
            self.held += data
            if self.held.count(b"\n") < self.rows:
                return None
            self.proc = open_pager()
            if self.proc is None:
                self.gone = True
                data, self.held = self.held, b""
                return self.direct.write(data)
            from benchctl.follow import FilterSink
            assert self.proc.stdin is not None
            self.filter = FilterSink(self.proc.stdin)
            data, self.held = self.held, b""
        try:
            self.filter.write(data)
        except BrokenPipeError:
            self.gone = True
        return None

    def notice(self, text: str) -> None:
        self.direct.notice(text)

    def close(self) -> None:
        if self.proc is None:
            if self.held:
                self.direct.write(self.held)
                self.held = b""
            self.direct.close()
            return
        try:
            if not self.gone and self.filter is not None:
                self.filter.close()
        except BrokenPipeError:
            pass
        close_pager(self.proc)

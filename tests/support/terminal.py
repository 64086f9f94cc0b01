"""Run a command with its output on a real pseudo-terminal (what benchctl sees as a tty).

    code, screen, err = in_pty(argv, env, columns=80)          # stderr on the terminal too
    code, screen, err = in_pty(argv, env, stderr_apart=True)   # stderr on a pipe (err)
"""
from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time


def in_pty(argv: list[str], env: dict[str, str], *, columns: int | None = None,
           rows: int = 24, stderr_apart: bool = False,
           timeout: float = 30) -> tuple[int, bytes, bytes]:
    """argv with stdout (and stderr, unless `stderr_apart`) on a pseudo-terminal, sized
    columns x rows when `columns` is given; returns (exit code, terminal bytes, stderr bytes).
    Bounded by `timeout`: a command still running then is killed."""
    master, slave = os.openpty()
    if columns is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.PIPE if stderr_apart else slave, env=env)
    os.close(slave)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                data += chunk
            elif proc.poll() is not None:
                break
        err = proc.stderr.read() if proc.stderr is not None else b""  # until the child exits
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
        os.close(master)
    return code, data, err

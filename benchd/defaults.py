"""Defaults shared by benchd and benchctl (stdlib only: benchctl imports it on every call)."""
from __future__ import annotations

import os
from pathlib import Path

SOCKET_ENV = "BENCHD_SOCKET"
ROOT_ENV = "BENCHD_ROOT"
SYSTEM_SOCKET = Path("/run/benchd/benchd.sock")  # where benchd.socket puts it
DEFAULT_GRACE_S = 10.0
MIN_FREE_BYTES = 1 << 20     # no job starts with less free on logs/ or results/ (507)
# a connection idle this long (no request yet, or between requests, or a request head
# still unfinished) is closed; a request body must arrive within it (else 408)
DEFAULT_CLIENT_TIMEOUT_S = 60.0
# a job's supervisor must report "running" or "failed" within this; POST /api/benchmark/jobs
# may take that long to answer, so benchctl waits longer for it
JOB_START_TIMEOUT_S = 30.0


def local_socket(root: Path) -> Path:
    """A hand-started benchd listens here: <root>/run/benchd.sock."""
    return root / "run" / "benchd.sock"


def _present(path: Path) -> bool:
    """Like Path.exists(), but a socket in a directory we may not enter (/run/benchd is 0750
    benchd:benchd) counts as present: the client's connect then says "permission denied"
    instead of stat() raising a traceback."""
    try:
        path.stat()
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def client_socket(explicit: str | None = None) -> Path:
    """Socket a client should try: --socket, $BENCHD_SOCKET, the local lab root's socket if it
    exists, the system service's if it exists, else the local one (for the error message)."""
    if explicit:
        return Path(explicit)
    if os.environ.get(SOCKET_ENV):
        return Path(os.environ[SOCKET_ENV])
    root = Path(os.environ.get(ROOT_ENV) or ".")
    local = local_socket(root)
    if _present(local):
        return local
    if _present(SYSTEM_SOCKET):
        return SYSTEM_SOCKET
    return local

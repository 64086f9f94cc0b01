"""Defaults shared by benchd and benchctl (stdlib only: benchctl imports it on every call)."""
from __future__ import annotations

from pathlib import Path

SOCKET_ENV = "BENCHD_SOCKET"
ROOT_ENV = "BENCHD_ROOT"
SYSTEM_SOCKET = Path("/run/benchd/benchd.sock")  # where benchd.socket puts it
SERVICE_USER = "benchd"  # User= of benchd.service (systemd/, scripts/install-service)
DEFAULT_GRACE_S = 10.0
NOTIFY_CONFIG = Path("/etc/benchd/notify.toml")  # benchd's notification settings, if any

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


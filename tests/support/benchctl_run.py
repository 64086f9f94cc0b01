"""Run the real `benchctl` console script against a test Daemon (tests/support/daemon.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.daemon import Daemon

_SCRIPT = Path(sys.executable).parent / "benchctl"
BENCHCTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "benchctl"]


def env_for(d: Daemon, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCHD_", "NO_COLOR"))}
    # the marker lets the daemon helper's cleanup kill any benchctl a failing test leaves
    env.update({"BENCHD_SOCKET": str(d.socket_path), "BENCHD_TEST_MARKER": d.marker})
    env.update(extra)
    return env


def bc(d: Daemon, *args: str, timeout: float = 30, **extra_env: str
       ) -> subprocess.CompletedProcess[str]:
    """benchctl ARGS... to completion, text output captured."""
    return subprocess.run([*BENCHCTL, *args], capture_output=True, text=True, timeout=timeout,
                          env=env_for(d, **extra_env), stdin=subprocess.DEVNULL)

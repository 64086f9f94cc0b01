"""Where and with what a run was measured: host, CPU, OS, Python, library versions, git SHA.

Collected once per run in the orchestrator; library versions come from installed
distribution metadata (adapter.version()), so no astronomy library is imported here.
"""
from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

from pipeline.schema import Metadata

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def utc_now() -> str:
    """UTC ISO-8601 with seconds, for people and for ordering."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_state(root: Path = PROJECT_ROOT) -> tuple[str | None, bool | None]:
    """(HEAD SHA, working tree dirty) of the project checkout, (None, None) outside git."""
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=10, check=True).stdout
        return sha or None, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def adapter_versions(registry: ModuleType) -> dict[str, str]:
    """Every registered adapter's library version, or why it is unknown."""
    out: dict[str, str] = {}
    for name, cls in sorted(registry.ADAPTERS.items()):
        try:
            out[name] = str(cls().version())
        except Exception as e:  # not installed (novas) is a fact to record, not an error
            out[name] = f"unavailable: {type(e).__name__}: {e}"
    return out


def collect(registry: ModuleType, seed: int, argv: list[str]) -> Metadata:
    """The run's metadata block (manifest.json "metadata")."""
    import numpy
    sha, dirty = git_state()
    return Metadata(utc_time=utc_now(), hostname=socket.gethostname(), cpu_model=cpu_model(),
                    cores=os.cpu_count() or 0, os=platform.platform(),
                    python=sys.version.split()[0] + f" ({platform.python_implementation()})",
                    numpy=numpy.__version__, git_sha=sha, git_dirty=dirty,
                    adapter_versions=adapter_versions(registry), seed=seed, argv=list(argv),
                    load_avg=[round(x, 2) for x in os.getloadavg()])

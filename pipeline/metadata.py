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


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpufreq(root: Path = Path("/sys/devices/system/cpu")) -> tuple[dict[str, str],
                                                                   dict[str, int]]:
    """Per CPU: scaling governor and current frequency (kHz), where cpufreq exists (a VM
    often has none: both empty). A 'powersave' governor or a low frequency explains slow runs."""
    governors: dict[str, str] = {}
    freqs: dict[str, int] = {}
    for d in sorted(root.glob("cpu[0-9]*")):
        gov = _read(d / "cpufreq" / "scaling_governor")
        if gov:
            governors[d.name] = gov
        cur = _read(d / "cpufreq" / "scaling_cur_freq")
        if cur and cur.isdigit():
            freqs[d.name] = int(cur)
    return governors, freqs


def cgroup_cpu_max() -> str | None:
    """The CPU quota of this process's cgroup: cgroup v2 cpu.max ("max 100000" = none), or
    v1 "quota period" from cpu.cfs_quota_us/cpu.cfs_period_us; None when neither exists."""
    v2 = _read(Path("/sys/fs/cgroup/cpu.max"))
    if v2:
        return v2
    quota = _read(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"))
    period = _read(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
    if quota and period:
        return f"{'max' if quota == '-1' else quota} {period}"
    return None


def collect(registry: ModuleType, seed: int, argv: list[str],
            thread_env: dict[str, str] | None = None) -> Metadata:
    """The run's metadata block (manifest.json "metadata"), with the machine's load and
    frequency-scaling fingerprint (pyperf records the same kind of facts)."""
    import numpy
    sha, dirty = git_state()
    governors, freqs = cpufreq()
    return Metadata(utc_time=utc_now(), hostname=socket.gethostname(), cpu_model=cpu_model(),
                    cores=os.cpu_count() or 0, os=platform.platform(),
                    python=sys.version.split()[0] + f" ({platform.python_implementation()})",
                    numpy=numpy.__version__, git_sha=sha, git_dirty=dirty,
                    adapter_versions=adapter_versions(registry), seed=seed, argv=list(argv),
                    load_avg=load_avg(), nproc=len(os.sched_getaffinity(0)),
                    cgroup_cpu_max=cgroup_cpu_max(),
                    cpu_governors=governors, cpu_cur_freq_khz=freqs,
                    thread_env=dict(thread_env or {}),
                    cpuset=sorted(os.sched_getaffinity(0)))


def usage() -> tuple[float, int]:
    """(user+system CPU seconds, peak RSS bytes) of this process and its reaped children (the
    workers): what the run cost, recorded when it is published."""
    import resource
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    return round(cpu, 3), max(me.ru_maxrss, kids.ru_maxrss) * 1024


def isolation_line(meta: Metadata) -> str:
    """'CPUs 1 · threads 1 (OMP/OPENBLAS/MKL/NUMEXPR)' for summary.md: where it ran."""
    cpus = ",".join(map(str, meta.cpuset)) if meta.cpuset else "?"
    threads = sorted(set(meta.thread_env.values()))
    return (f"CPUs {cpus} (affinity) · threads {'/'.join(threads) or '?'} "
            f"(OMP/OPENBLAS/MKL/NUMEXPR_NUM_THREADS)")

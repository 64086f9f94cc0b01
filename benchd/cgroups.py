"""Per-job cgroups in benchd's delegated cgroup subtree (systemd `Delegate=yes`; README
"Each job in its own cgroup").

Why a cgroup: a process group or session is something a process can leave (setsid), and its
environment marks can be cleared; a cgroup cannot be left by an unprivileged process, so
`cgroup.kill` of a job's cgroup ends every process the job ever started, found or not.

Layout under the unit's cgroup (owned by benchd's user through delegation):
    benchd.service/            no processes of its own once benchd has moved
      daemon/                  benchd itself (it moves there at start)
      job-<id>/                one job: its supervisor and everything below it; where the
                               cpuset/memory controllers are enabled for the subtree, the
                               files behind AllowedCPUs= and MemoryMax= (cpuset.cpus,
                               memory.max) carry its limits
Used only when the unit asks for it (BENCHD_CGROUPS=delegate, set in benchd.service) and the
subtree is really writable: by hand, benchd never touches the cgroup it happens to be in.
"""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")
MODE_ENV = "BENCHD_CGROUPS"          # "delegate": use the delegated subtree
DAEMON_LEAF = "daemon"
KILL_TIMEOUT_S = 5.0


def own_cgroup(pid: int | None = None, fs: Path = CGROUP_FS) -> Path | None:
    """The directory of `pid`'s (default: our) cgroup v2 under `fs`. /proc/<pid>/cgroup
    names it from the root of the cgroup namespace we may not be at the top of (a
    container's /sys/fs/cgroup is a subtree): the longest tail of that path that exists
    under `fs` and lists the pid in its cgroup.procs."""
    pid = os.getpid() if pid is None else pid
    try:
        line = next(ln for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                    if ln.startswith("0::"))
    except (OSError, StopIteration):
        return None
    parts = [p for p in line[3:].strip().split("/") if p]
    for i in range(len(parts) + 1):
        d = fs.joinpath(*parts[i:])
        try:
            if str(pid) in (d / "cgroup.procs").read_text().split():
                return d
        except OSError:
            continue
    return None


def delegated_root(environ: dict[str, str] | None = None) -> Path | None:
    """benchd's delegated subtree (the unit's cgroup), when the unit asks for per-job cgroups
    and the subtree is writable by us; else None (by hand: process groups only)."""
    env = os.environ if environ is None else environ
    if env.get(MODE_ENV) != "delegate":
        return None
    here = own_cgroup()
    if here is None:
        return None
    root = here.parent if here.name == DAEMON_LEAF else here
    if all(os.access(root / f, os.W_OK) for f in ("cgroup.procs", "cgroup.subtree_control")) \
            and os.access(root, os.W_OK):
        return root
    return None


def enter_daemon_leaf(root: Path) -> list[str]:
    """Move benchd into root/daemon, so that the job cgroups are its siblings, not below a
    cgroup it is in. Returns the controllers the job cgroups have (those enabled in root's
    cgroup.subtree_control by whoever manages it; benchd does not enable any: see README
    "Each job in its own cgroup" for why)."""
    leaf = root / DAEMON_LEAF
    leaf.mkdir(exist_ok=True)
    (leaf / "cgroup.procs").write_text(str(os.getpid()))
    try:
        return (root / "cgroup.subtree_control").read_text().split()
    except OSError:
        return []


def job_dir(root: Path, job_id: str) -> Path:
    return root / f"job-{job_id}"


def create_job(root: Path, job_id: str, cpus: tuple[int, ...] | None,
               memory_max: int | None) -> tuple[Path, list[str]]:
    """Make the job's cgroup and set the limits the kernel enforces there (cpuset.cpus =
    AllowedCPUs=, memory.max = MemoryMax=). Returns it and which limits were set."""
    d = job_dir(root, job_id)
    d.mkdir(exist_ok=True)
    applied = []
    if cpus and (d / "cpuset.cpus").exists():
        (d / "cpuset.cpus").write_text(",".join(map(str, cpus)))
        applied.append("cpuset.cpus")
    if memory_max is not None and (d / "memory.max").exists():
        (d / "memory.max").write_text(str(memory_max))
        if (d / "memory.swap.max").exists():   # over the limit is out of memory, not swap
            (d / "memory.swap.max").write_text("0")
        applied.append("memory.max")
    return d, applied


def enter(d: Path) -> None:
    """Move the calling process into cgroup `d` (the supervisor, before it starts anything)."""
    (d / "cgroup.procs").write_text(str(os.getpid()))


def pids(d: Path) -> list[int]:
    """Every process in `d` and its descendant cgroups."""
    out: list[int] = []
    for dirpath, _dirs, _files in os.walk(d):
        try:
            out += [int(x) for x in (Path(dirpath) / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            pass
    return out


def populated(d: Path) -> bool:
    try:
        for line in (d / "cgroup.events").read_text().splitlines():
            if line.startswith("populated "):
                return line.split()[1] == "1"
    except OSError:
        return False
    return False


def kill(d: Path) -> list[int]:
    """SIGKILL every process in cgroup `d` (cgroup.kill: nothing can escape or fork past it)
    and wait, bounded, until it is empty. Returns the pids that were in it."""
    victims = pids(d)
    if not victims:
        return []
    try:
        (d / "cgroup.kill").write_text("1")
    except OSError as e:
        if e.errno == errno.ENOENT:
            return []
        raise
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while populated(d) and time.monotonic() < deadline:
        time.sleep(0.005)   # the kernel delivers the kills; bounded
    return victims


def remove(d: Path) -> bool:
    """rmdir an empty job cgroup; False if it is still populated or gone already."""
    try:
        d.rmdir()
        return True
    except OSError:
        return False


def memory_events(d: Path) -> dict[str, int]:
    """memory.events of cgroup `d` (oom, oom_kill, ...); empty without the controller."""
    try:
        return {k: int(v) for k, v in (ln.split() for ln in
                                      (d / "memory.events").read_text().splitlines())}
    except (OSError, ValueError):
        return {}


def memory_peak(d: Path) -> int | None:
    try:
        return int((d / "memory.peak").read_text())
    except (OSError, ValueError):
        return None

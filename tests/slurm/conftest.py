"""A real single-node Slurm cluster for the Slurm executor tests (../shared/slurm/slurm-up:
Debian's slurm-wlm and munge, installed with apt on first use), shared by every test of the
session and torn down with slurm-down. Needs root (munged, slurmctld and slurmd run as
root); without root every test here is skipped, saying so.

Each test gets benchd daemons with `--executor slurm` (tests/support/daemon.py) and, at the
end, a cluster with no job left (scancel of everything, then a bounded wait for an empty
queue), so that one test's jobs never hold the node for the next.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import wait_until
from tests.support.daemon import Daemon, daemon_factory  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]
SLURM_DIR = (REPO.parent / "shared" / "slurm") if (REPO.parent / "shared" / "slurm").is_dir() \
    else Path("/work/shared/slurm")
APT_LOCK_WAIT_S = 300     # another apt-get (another engineer's slurm-up) may hold dpkg's lock


@dataclass
class Cluster:
    dir: Path
    conf: Path
    keep: set[str] = field(default_factory=set)   # Slurm ids clear() spares (a long job
                                                  # one test watches while others run)

    def run(self, *argv: str, check: bool = True, timeout: float = 30
            ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, SLURM_CONF=str(self.conf)))
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {r.returncode}: {r.stderr}")
        return r

    def queue(self) -> list[str]:
        """Ids of the jobs squeue lists (pending, running, completing)."""
        return self.run("squeue", "--noheader", "-o", "%i").stdout.split()

    def ctld_pid(self) -> int | None:
        try:
            pid = int((self.dir / "run" / "slurmctld.pid").read_text().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def stop_ctld(self) -> None:
        """Stop slurmctld only (slurmd and munged keep running): SIGTERM the pid in its
        pid file and wait until that process is gone."""
        pid = self.ctld_pid()
        assert pid is not None, "slurmctld is not running"
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), 30, 0.05, "slurmctld to exit")

    def start_ctld(self) -> None:
        """Start slurmctld again (it recovers its jobs from StateSaveLocation)."""
        self.run("slurmctld", "-f", str(self.conf))
        wait_until(lambda: self.run("scontrol", "ping", check=False).returncode == 0, 30,
                   0.05, "slurmctld to answer")

    def clear(self) -> None:
        """No job left (but those in `keep`): each cancelled, and a bounded wait for them to
        leave the queue."""
        if self.ctld_pid() is None:
            self.start_ctld()
        ids = [i for i in self.queue() if i not in self.keep]
        if ids:
            self.run("scancel", "--full", "--signal=KILL", *ids, check=False)
            self.run("scancel", *ids, check=False)
        wait_until(lambda: not set(self.queue()) - self.keep, 60, 0.1,
                   "an empty Slurm queue")


def _machine_env() -> dict[str, str]:
    """This environment without the OpenMP thread settings: slurm-up sizes the node with
    `nproc`, which honours OMP_NUM_THREADS, and a test of this session that imported
    pipeline.worker in-process has set it to 1 here (pipeline.threads) -- a 1-CPU node."""
    return {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "OMP_THREAD_LIMIT")}


def _slurm_up(d: Path) -> Path:
    deadline = time.monotonic() + APT_LOCK_WAIT_S
    while True:
        r = subprocess.run([str(SLURM_DIR / "slurm-up"), str(d)], capture_output=True,
                           text=True, timeout=APT_LOCK_WAIT_S, env=_machine_env())
        if r.returncode == 0:
            return Path(r.stdout.strip().splitlines()[-1])
        busy = "dpkg" in r.stderr and "lock" in r.stderr
        if not busy or time.monotonic() > deadline:
            raise RuntimeError(f"slurm-up {d} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        subprocess.run([str(SLURM_DIR / "slurm-down"), str(d)], capture_output=True,
                       timeout=60)
        time.sleep(2)   # an external apt-get holds dpkg's lock: wait for it, bounded


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("the Slurm executor tests start a real Slurm cluster (munged, slurmctld, "
                    "slurmd as root): they need root")
    # not under pytest's 0700 base: munged (user munge) must reach its directory
    d = Path(tempfile.mkdtemp(prefix="benchd-slurm-", dir="/tmp"))
    conf = _slurm_up(d)
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)   # benchd, benchctl and the helpers inherit it
    try:
        yield Cluster(d, conf)
    finally:
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        subprocess.run([str(SLURM_DIR / "slurm-down"), str(d)], capture_output=True,
                       timeout=60)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def slurm(slurm_cluster: Cluster) -> Iterator[Cluster]:
    """The session's cluster, left with no job after the test."""
    yield slurm_cluster
    slurm_cluster.clear()


@pytest.fixture
def slurm_daemon(slurm: Cluster, daemon_factory: Callable[..., Daemon]
                 ) -> Callable[..., Daemon]:
    """make(*benchd args, **Daemon kwargs) -> a started benchd with --executor slurm."""
    def make(*args: str, **kw: Any) -> Daemon:
        kw.setdefault("extra_args", ["--executor", "slurm", *args])
        d = daemon_factory(start=False, **kw)
        return d.start(timeout=90)
    return make

"""Fixtures for the hostile-conditions tests: real daemons (tests/support/daemon.py), real
system users, real tmpfs mounts. Everything a fixture creates is removed in teardown, even
when the test fails."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon import daemon_factory  # noqa: F401  (fixture)

NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (users, mounts, setuid)")


# useradd/groupadd/userdel/groupdel from two test processes at once (pytest-xdist workers, or
# two checkouts' suites on one machine) contend for /etc/passwd; these calls take turns.
ACCOUNTS_LOCK = Path("/tmp/benchd-tests-accounts.lock")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def _run_locked(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """_run with ACCOUNTS_LOCK held (bounded: _run's timeout, and the lock's holders are
    short useradd-family commands)."""
    with open(ACCOUNTS_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _run(argv)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """mount(path, size, nr_inodes=None) -> path: a tmpfs of `size` (e.g. "2m"), and at most
    `nr_inodes` inodes if given, mounted on `path` (created); unmounted (lazily if still
    busy) in teardown."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(path: Path, size: str, nr_inodes: int | None = None) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        opts = f"size={size},mode=0755" + (f",nr_inodes={nr_inodes}" if nr_inodes else "")
        r = _run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)])
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        if _run(["umount", str(path)]).returncode != 0:
            _run(["umount", "-l", str(path)])


class SystemUsers:
    """Real system users and groups made for one test (names carry a random suffix)."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.users: list[str] = []
        self.groups: list[str] = []

    def group(self, base: str) -> tuple[str, int]:
        name = f"bh{base}{self.tag}"
        r = _run_locked(["groupadd", "--system", name])
        if r.returncode != 0:
            pytest.skip(f"groupadd failed: {r.stderr.strip()}")
        self.groups.append(name)
        import grp
        return name, grp.getgrnam(name).gr_gid

    def user(self, base: str, groups: tuple[str, ...] = ()) -> tuple[str, int, int]:
        """(name, uid, gid) of a new system user without a home, in `groups`."""
        name = f"bh{base}{self.tag}"
        argv = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        if groups:
            argv += ["--groups", ",".join(groups)]
        r = _run_locked([*argv, name])
        if r.returncode != 0:
            pytest.skip(f"useradd failed: {r.stderr.strip()}")
        self.users.append(name)
        import pwd
        pw = pwd.getpwnam(name)
        return name, pw.pw_uid, pw.pw_gid

    def cleanup(self) -> None:
        for name in self.users:
            _run_locked(["userdel", name])
        for name in self.groups:
            _run_locked(["groupdel", name])


@pytest.fixture
def system_users() -> Iterator[SystemUsers]:
    if os.geteuid() != 0:
        pytest.skip("creating users needs root")
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not installed")
    users = SystemUsers()
    try:
        yield users
    finally:
        users.cleanup()

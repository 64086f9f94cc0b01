"""benchd.server: the root lock, our own socket (mode, stale file, live daemon), LISTEN_FDS."""
from __future__ import annotations

import os
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from benchd.server import StartupError, activated_socket, bind_socket, lock_root


@pytest.fixture
def short_dir():
    """A directory whose socket paths fit in sun_path."""
    d = Path(tempfile.mkdtemp(prefix="bd-", dir="/tmp"))
    yield d
    for p in sorted(d.rglob("*"), reverse=True):
        p.unlink() if not p.is_dir() else p.rmdir()
    d.rmdir()


def test_one_daemon_per_root(tmp_path: Path) -> None:
    fd = lock_root(tmp_path)
    try:
        assert (tmp_path / "run" / "lock" / "benchd.lock").read_text().strip() == str(os.getpid())
        with pytest.raises(StartupError, match=rf"already running on root.*pid {os.getpid()}"):
            lock_root(tmp_path)
    finally:
        os.close(fd)
    os.close(lock_root(tmp_path))  # released with the fd


def test_own_socket_has_the_mode_and_its_directory_0750(short_dir: Path) -> None:
    path = short_dir / "sub" / "benchd.sock"
    sock = bind_socket(path, 0o660)
    with sock:
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750
        assert stat.S_ISSOCK(path.stat().st_mode)
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(str(path))  # it listens


def test_stale_socket_is_replaced_live_one_refused(short_dir: Path, caplog) -> None:
    path = short_dir / "benchd.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # a crashed daemon leaves the file behind: connect() is refused
    os.chmod(path, 0o644)
    live = bind_socket(path, 0o600)
    with live:
        assert "removing stale socket" in caplog.text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # ours now (inodes may be reused)
        with pytest.raises(StartupError, match="already listening"):
            bind_socket(path, 0o600)
        assert path.exists()  # the live daemon's socket is left alone


def test_refuses_to_replace_a_non_socket_and_overlong_paths(short_dir: Path) -> None:
    f = short_dir / "benchd.sock"
    f.write_text("precious")
    with pytest.raises(StartupError, match="not a socket"):
        bind_socket(f, 0o660)
    assert f.read_text() == "precious"
    with pytest.raises(StartupError, match="longer than"):
        bind_socket(short_dir / ("x" * 120), 0o660)


def test_listen_fds_for_another_pid_is_ignored() -> None:
    assert activated_socket({"LISTEN_FDS": "1", "LISTEN_PID": "1"}) is None
    assert activated_socket({}) is None


def test_unwritable_root_is_a_startup_error_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("a file where the run directory should be")
    with pytest.raises(StartupError, match="cannot create the root lock"):
        lock_root(tmp_path)

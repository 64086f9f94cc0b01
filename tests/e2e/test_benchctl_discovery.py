"""How benchctl finds benchd's socket and whether it trusts it: real directories, real users
(useradd, removed in teardown), real sockets — a real benchd, or the raw responder
(tests/benchctl/benchctl_rawserver.py) run as another user to play a fake benchd that a
planted socket would lead to.

A user's benchctl runs as that user for real (SO_PEERCRED and file permissions apply): a
child imports what it needs as root, then drops to the user (setgroups/setgid/setuid) before
main() looks for the socket. (The venv's python lives under /root, mode 0700, so it cannot be
exec'd as another user here; tests/hostile/test_hostile_users.py does the same.)"""
from __future__ import annotations

import grp
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from benchctl import discovery
from benchctl.exitcodes import UNAVAILABLE, UNTRUSTED_SOCKET
from benchd.defaults import SYSTEM_SOCKET
from benchd.schema import Health
from tests.e2e.test_benchctl_e2e import _run_in_pty
from tests.hostile.conftest import NEEDS_ROOT, SystemUsers, system_users, tmpfs  # noqa: F401
from tests.support.benchctl_run import BENCHCTL
from tests.support.daemon import REPO, daemon_factory  # noqa: F401 (fixture)

# one made-up answer to every request: a Health, which is also an empty job list (`status`
# asks for both: benchd's health, then the running and waiting jobs)
FAKE_HEALTH = json.dumps({"status": "ok", "version": "6.6.6", "pid": 1, "uptime_s": 1.0,
                          "root": "/fake", "socket": "/fake/run/benchd.sock",
                          "active_job": None, "jobs": [], "next": None, "total": 0}).encode()

# modules a dropped child needs, imported while it is still root
_PRELUDE = """
import os, sys, json, socket, stat, pwd, grp, locale, gettext, urllib.parse, encodings.idna
sys.path.insert(0, {repo!r})
import benchctl.cli, benchctl.client, benchctl.discovery, benchctl.jobref, benchctl.render
import benchctl.exitcodes, benchctl.commands.status, benchd.defaults
from tests.benchctl.benchctl_rawserver import RawServer, respond
benchctl.cli.build_parser("status").format_help()  # argparse's lazy imports
{setup}
os.setgroups({groups!r}); os.setgid({gid}); os.setuid({uid})
assert os.geteuid() == {uid}
"""


@dataclass
class User:
    name: str
    uid: int
    gid: int
    groups: list[int]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any BENCHD_* setting: benchctl must find the socket itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCHD_", "NO_COLOR"))}
    env.update(extra)
    return env


def as_user(user: User, code: str, cwd: Path, setup: str = "", **popen: object
            ) -> subprocess.Popen[str]:
    prelude = _PRELUDE.format(repo=str(REPO), groups=user.groups, gid=user.gid, uid=user.uid,
                              setup=setup)
    return subprocess.Popen([sys.executable, "-c", prelude + textwrap.dedent(code)],
                            text=True, cwd=cwd, env=clean_env(), **popen)  # type: ignore[arg-type]


def benchctl_as(user: User, cwd: Path, *argv: str, setup: str = ""
                ) -> subprocess.CompletedProcess[str]:
    proc = as_user(user, f"sys.exit(benchctl.cli.main({list(argv)!r}))\n", cwd, setup,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


class FakeBenchd:
    """The raw responder, run as `user` on `path` (creating its directory), answering every
    request with a made-up Health. `requests` is known once it has stopped."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.requests: int | None = None


@contextmanager
def fake_benchd_as(user: User, path: Path, umask: int, dir_mode: int = 0o777
                   ) -> Iterator[FakeBenchd]:
    code = f"""
        os.umask({umask})
        os.makedirs({str(path.parent)!r}, {dir_mode}, exist_ok=True)
        srv = RawServer({str(path)!r}, [respond(200, {FAKE_HEALTH!r})])
        srv.__enter__()
        print("ready", flush=True)
        sys.stdin.read()          # until the test closes our stdin
        srv.__exit__(None, None, None)
        print(len(srv.requests), flush=True)
    """
    proc = as_user(user, code, Path("/"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)
    fake = FakeBenchd(proc)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        assert line == "ready\n", (line, proc.poll(), proc.stderr.read() if proc.poll() else "")
        yield fake
    finally:
        out, err = proc.communicate("", timeout=30)
        assert proc.returncode == 0, err
        fake.requests = int(out.split()[-1])


@pytest.fixture
def users(system_users: SystemUsers) -> dict[str, User]:
    group, _ = system_users.group("grp")

    def mk(base: str, *groups: str) -> User:
        name, uid, gid = system_users.user(base, groups)
        return User(name, uid, gid, sorted({gid, *(grp.getgrnam(g).gr_gid for g in groups)}))

    return {"alice": mk("alice", group), "mallory": mk("mallory"), "svc": mk("svc"),
            "group": group}  # type: ignore[dict-item]


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A shared scratch directory like /tmp: root's, mode 1777."""
    d = Path(tempfile.mkdtemp(prefix="bd-scratch-", dir="/tmp"))
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _socket_line(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("socket:"))


# --- hardening: a socket someone else planted is refused ---------------------------------

@NEEDS_ROOT
def test_a_socket_planted_by_another_user_in_a_1777_dir_is_refused(users, scratch: Path
                                                                   ) -> None:
    alice, mallory = users["alice"], users["mallory"]
    planted = scratch / "run" / "benchd.sock"
    mine = scratch / "alice-work"
    mine.mkdir()
    os.chown(mine, alice.uid, alice.gid)
    with fake_benchd_as(mallory, planted, umask=0) as fake:
        for cwd in (scratch, mine):  # in the directory, and below it (discovery walks up)
            r = benchctl_as(alice, cwd, "status")
            assert r.returncode == UNTRUSTED_SOCKET, (cwd, r.returncode, r.stdout, r.stderr)
            assert "6.6.6" not in r.stdout  # the fake's answer was never read
            assert f"refusing the benchd socket found at {planted}" in r.stderr, r.stderr
            assert f"owned by {mallory.name} (uid {mallory.uid})" in r.stderr, r.stderr
            assert f"--socket {planted}" in r.stderr and "Traceback" not in r.stderr
        # named explicitly, a socket is used as given: the caller's own decision
        r = benchctl_as(alice, scratch, "status", "--socket", str(planted))
        assert r.returncode == 0 and "benchd 6.6.6" in r.stdout, r.stderr
        assert f"socket: {planted} (given with --socket)" in r.stdout
    assert fake.requests == 2  # only the explicit `status` reached it (health, then jobs)


@NEEDS_ROOT
def test_the_users_own_socket_is_used_and_found_from_a_subdirectory(users, scratch: Path
                                                                    ) -> None:
    """alice's lab root inside the shared 1777 directory: her own socket is trusted from the
    lab and from results/ below it; to another user the same socket is alice's, refused."""
    alice, mallory = users["alice"], users["mallory"]
    lab = scratch / "lab"
    for d in (lab, lab / "results"):
        d.mkdir()
        os.chown(d, alice.uid, alice.gid)
    sock = lab / "run" / "benchd.sock"
    with fake_benchd_as(alice, sock, umask=0o022, dir_mode=0o750):
        r = benchctl_as(alice, lab / "results", "status")
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert _socket_line(r.stdout) == (f"socket: {sock} (found in {lab}, a parent of the "
                                          "current directory); benchd says it listens on "
                                          "/fake/run/benchd.sock")
        r = benchctl_as(alice, lab, "status")
        assert r.returncode == 0 and f"socket: {sock} (found in the current directory)" \
            in r.stdout, r.stderr
        r = benchctl_as(mallory, lab / "results", "status")
        assert r.returncode == UNTRUSTED_SOCKET, (r.returncode, r.stderr)
        assert f"{lab / 'run'} (mode 0750) is owned by {alice.name}" in r.stderr, r.stderr


@NEEDS_ROOT
def test_the_service_users_directory_is_trusted_and_outsiders_are_told_the_group(
        users) -> None:
    """The system service's layout: socket 0660 root:GROUP in a directory 0750 owned by the
    service user. The service user here is a created one: the real account `benchd` cannot be
    made on this shared machine, so the child sets discovery.SERVICE_USER to its name (the
    only stand-in). A group member is served; without the service user trusted the directory
    is refused; a non-member gets EACCES and is told which group to join."""
    alice, mallory, svc, group = users["alice"], users["mallory"], users["svc"], users["group"]
    gid = grp.getgrnam(group).gr_gid
    base = Path(tempfile.mkdtemp(prefix="bd-sys-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        run = base / "run"
        run.mkdir()
        sock = run / "benchd.sock"
        with fake_benchd_as(User("root", 0, 0, [0]), sock, umask=0o077):
            os.chown(sock, 0, gid)
            os.chmod(sock, 0o660)
            os.chown(run, svc.uid, gid)
            os.chmod(run, 0o750)
            trust_svc = f"benchctl.discovery.SERVICE_USER = {svc.name!r}"
            r = benchctl_as(alice, base, "status", setup=trust_svc)
            assert r.returncode == 0, (r.returncode, r.stderr)
            assert f"socket: {sock} (found in the current directory)" in r.stdout
            r = benchctl_as(alice, base, "status")  # the service user is `benchd`, not svc
            assert r.returncode == UNTRUSTED_SOCKET, r.stderr
            assert f"{run} (mode 0750) is owned by {svc.name}" in r.stderr, r.stderr
            r = benchctl_as(mallory, base, "status", setup=trust_svc)
            assert r.returncode == UNAVAILABLE, (r.returncode, r.stderr)
            assert (f"permission denied: {run} is {svc.name}:{group} mode 0750, and you "
                    f"({mallory.name}) are not in group {group}") in r.stderr, r.stderr
            assert f"`sudo usermod -aG {group} {mallory.name}`" in r.stderr
            assert "log in again" in r.stderr and "benchd --root DIR" not in r.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


@NEEDS_ROOT
def test_trust_rules_for_the_directories_above_a_found_socket(users) -> None:
    """check_trusted on real files, as root: sticky and user-private-group directories pass;
    world- or shared-group-writable ones, another owner anywhere above, symlinks and
    non-sockets are refused with the path and the reason."""
    shared = users["group"]
    shared_gid = grp.getgrnam(shared).gr_gid
    other = users["mallory"]
    base = Path(tempfile.mkdtemp(prefix="bd-trust-", dir="/tmp"))
    try:
        lab, run = base / "lab", base / "lab" / "run"
        run.mkdir(parents=True)
        sock = run / "benchd.sock"
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(sock))
        s.close()

        def verdict() -> str | None:
            try:
                discovery.check_trusted(str(sock))
            except discovery.UntrustedSocket as exc:
                return exc.reason
            return None

        assert verdict() is None
        os.chmod(run, 0o1777)
        assert verdict() is None                      # sticky: entries cannot be swapped
        os.chmod(run, 0o777)
        assert verdict() == f"{run} (mode 0777, not sticky) is writable by everyone"
        os.chmod(run, 0o775)                          # root:root, the owner's own group
        assert verdict() is None
        os.chown(run, 0, shared_gid)
        assert verdict() == (f"{run} (mode 0775, not sticky) is writable by group {shared} "
                             f"(gid {shared_gid}): its members could replace what is in it")
        os.chmod(run, 0o755)
        assert verdict() is None
        os.chown(lab, other.uid, other.gid)           # an untrusted owner further up
        assert verdict() == (f"{lab} (mode 0755) is owned by {other.name} (uid {other.uid}), "
                             "not by root (you) or benchd's service user benchd")
        os.chown(lab, 0, 0)
        os.chown(sock, other.uid, other.gid, follow_symlinks=False)
        assert verdict() == (f"the socket is owned by {other.name} (uid {other.uid}), not by "
                             "root (you) or benchd's service user benchd")
        sock.unlink()
        sock.write_text("")
        assert verdict() == "it is not a socket"
        sock.unlink()
        sock.symlink_to(base / "elsewhere.sock")
        assert verdict() == "the socket is a symlink (discovery follows none)"
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- discovery with a real benchd ---------------------------------------------------------

@pytest.fixture
def lab_root() -> Iterator[Path]:
    """A lab root under /tmp (a socket path must fit in 107 bytes), with results/."""
    d = Path(tempfile.mkdtemp(prefix="bd-lab-", dir="/tmp"))
    (d / "results").mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_status_from_results_uses_the_labs_socket_on_a_terminal_and_piped(
        daemon_factory, lab_root: Path) -> None:
    sock = lab_root / "run" / "benchd.sock"
    d = daemon_factory(root=lab_root, socket_path=sock)
    expected = f"socket: {sock} (found in {lab_root}, a parent of the current directory)"
    r = subprocess.run([*BENCHCTL, "status"], capture_output=True, text=True, timeout=30,
                       cwd=lab_root / "results", env=clean_env(), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert _socket_line(r.stdout) == expected and f"root:   {lab_root}" in r.stdout
    in_results = [sys.executable, "-c", "import os, sys; os.chdir(sys.argv[1]); "
                  "os.execv(sys.argv[2], sys.argv[2:])", str(lab_root / "results")]
    code, screen = _run_in_pty([*in_results, *BENCHCTL, "status"], clean_env(TERM="xterm"))
    assert code == 0 and expected in screen.decode().replace("\r\n", "\n"), screen
    r = subprocess.run([*BENCHCTL, "status"], capture_output=True, text=True, timeout=30,
                       cwd="/", env=clean_env(BENCHD_SOCKET=str(sock)))
    assert _socket_line(r.stdout) == f"socket: {sock} (from $BENCHD_SOCKET)", r.stderr
    r = subprocess.run([*BENCHCTL, "status", "--socket", str(sock)], capture_output=True,
                       text=True, timeout=30, cwd="/", env=clean_env())
    assert _socket_line(r.stdout) == f"socket: {sock} (given with --socket)", r.stderr
    # --json stays exactly the API's Health (its `socket` is where benchd listens)
    r = subprocess.run([*BENCHCTL, "status", "--json"], capture_output=True, text=True,
                       timeout=30, cwd=lab_root / "results", env=clean_env())
    health = msgspec.json.decode(r.stdout, type=Health)
    assert set(json.loads(r.stdout)) == set(Health.__struct_fields__)
    assert health.socket == str(sock) and health.pid == d.proc.pid


@NEEDS_ROOT
def test_discovery_stops_at_a_mount_point(daemon_factory, lab_root: Path, tmpfs) -> None:
    sock = lab_root / "run" / "benchd.sock"
    daemon_factory(root=lab_root, socket_path=sock)
    mnt = tmpfs(lab_root / "mnt", "1m")
    (mnt / "sub").mkdir()
    r = subprocess.run([*BENCHCTL, "status"], capture_output=True, text=True, timeout=30,
                       cwd=mnt / "sub", env=clean_env())
    assert r.returncode == UNAVAILABLE, (r.returncode, r.stdout, r.stderr)
    assert (f"looked for run/benchd.sock in {mnt / 'sub'} and each parent directory up to "
            f"the mount point {mnt} (discovery does not cross filesystems)") in r.stderr


def test_unreachable_tells_a_missing_socket_from_a_stale_one(lab_root: Path) -> None:
    """ENOENT says where discovery looked; ECONNREFUSED (a socket file nobody listens on, as
    a killed benchd leaves) says so; both keep the hint to start benchd."""
    r = subprocess.run([*BENCHCTL, "status"], capture_output=True, text=True, timeout=30,
                       cwd=lab_root / "results", env=clean_env())
    assert r.returncode == UNAVAILABLE, r.stderr
    if not os.path.lexists(SYSTEM_SOCKET):
        assert (f"cannot reach benchd at {lab_root}/results/run/benchd.sock: no such socket "
                f"(looked for run/benchd.sock in {lab_root}/results and each parent directory "
                f"and for {SYSTEM_SOCKET})") in r.stderr, r.stderr
    assert "benchd --root DIR" in r.stderr
    (lab_root / "run").mkdir(mode=0o750)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(lab_root / "run" / "benchd.sock"))
    stale.close()
    r = subprocess.run([*BENCHCTL, "status"], capture_output=True, text=True, timeout=30,
                       cwd=lab_root / "results", env=clean_env())
    assert r.returncode == UNAVAILABLE, r.stderr
    assert (f"cannot reach benchd at {lab_root}/run/benchd.sock: connection refused: nothing "
            "listens on it (a stale socket: benchd is not running)") in r.stderr, r.stderr
    assert "benchd --root DIR" in r.stderr


@NEEDS_ROOT
def test_permission_denied_names_the_group_to_join_or_to_log_in_again(
        users, daemon_factory) -> None:
    """A real benchd whose gid is the users' group (as the service's): its socket directory
    is 0750 and the socket 0660 of that group. An outsider is told to join the group; a user
    added to it whose session predates that is told to log in again; neither is told to
    start benchd, which runs."""
    alice, mallory, group = users["alice"], users["mallory"], users["group"]
    gid = grp.getgrnam(group).gr_gid
    sock_dir = Path(tempfile.mkdtemp(prefix="bd-acc-", dir="/tmp"))
    try:
        os.chmod(sock_dir, 0o755)
        sock = sock_dir / "sock" / "benchd.sock"
        d = daemon_factory(start=False, socket_path=sock)
        d.start(preexec_fn=lambda: os.setgid(gid))
        env_sock = f"os.environ['BENCHD_SOCKET'] = {str(sock)!r}"
        r = benchctl_as(mallory, Path("/"), "status", setup=env_sock)
        assert r.returncode == UNAVAILABLE, r.stderr
        assert (f"cannot reach benchd at {sock}: permission denied: {sock.parent} is "
                f"root:{group} mode 0750, and you ({mallory.name}) are not in group "
                f"{group}") in r.stderr, r.stderr
        assert f"`sudo usermod -aG {group} {mallory.name}`" in r.stderr
        assert "log in again" in r.stderr and "benchd --root DIR" not in r.stderr
        stale_session = User(alice.name, alice.uid, alice.gid, [alice.gid])
        r = benchctl_as(stale_session, Path("/"), "status", setup=env_sock)
        assert r.returncode == UNAVAILABLE, r.stderr
        assert (f"you ({alice.name}) were added to group {group} after this login session "
                f"started") in r.stderr and f"`newgrp {group}`" in r.stderr, r.stderr
        r = benchctl_as(alice, Path("/"), "status", setup=env_sock)
        assert r.returncode == 0, r.stderr
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)

"""Lock files against the group: a member of benchd's group (a real user made with useradd)
opens every lock file it can reach and holds a real flock on it, the way someone who wants to
block benchd would. benchd's root lock, a staged run's lock and a job's lock must be
unopenable for them, and an fd an older version's group-readable lock file left them must not
stop a restart, a resume or a discard. benchd runs here as root with the group as its gid (as
User=benchd Group=benchd would make it), on a root laid out like /var/lib/benchd (0750, the
group's): the group can reach the socket and read results/, as in the service."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.hostile.conftest import NEEDS_ROOT, SystemUsers
from tests.support.daemon import REPO, Daemon, wait_until

pytestmark = NEEDS_ROOT
JOBS = "/api/benchmark/jobs"

# Runs as root until it drops to the user: only stdlib modules, all imported before the drop
# (the venv's python lives under /root, which the user may not enter).
_HOLDER = """
import fcntl, json, os, signal, socket, sys
os.setgroups({groups!r}); os.setgid({gid}); os.setuid({uid})
fds, seen = {{}}, {{}}
for p in {paths!r}:
    try:
        fds[p] = os.open(p, os.O_RDONLY)
        seen[p] = "opened"
    except OSError as e:
        seen[p] = e.strerror
s = socket.socket(socket.AF_UNIX)
try:
    s.connect({sock!r})
    seen["socket"] = "connected"
except OSError as e:
    seen["socket"] = e.strerror
s.close()
print(json.dumps(seen), flush=True)
sys.stdin.readline()            # "lock": take LOCK_SH on every file opened, waiting if need be
signal.alarm(30)
for fd in fds.values():
    fcntl.flock(fd, fcntl.LOCK_SH)
signal.alarm(0)
print("held", flush=True)
sys.stdin.read()                # held until the test closes our stdin
"""


@dataclass
class Member:
    """A member of benchd's group."""
    name: str
    uid: int
    gid: int
    groups: list[int]


class Holder:
    """A process of `member` that opens `paths` now and flocks what it opened on lock()."""

    def __init__(self, member: Member, paths: list[Path], sock: Path, marker: str) -> None:
        code = _HOLDER.format(groups=member.groups, gid=member.gid, uid=member.uid,
                              paths=[str(p) for p in paths], sock=str(sock))
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd="/",
                                     env={"BENCHD_TEST_MARKER": marker})
        self.seen: dict[str, str] = json.loads(self._line())

    def _line(self) -> str:
        line = self.proc.stdout.readline()  # the holder's alarm bounds every wait in it
        assert line, f"the holder exited with {self.proc.wait(timeout=10)}"
        return line

    def opened(self) -> list[str]:
        return [p for p, what in self.seen.items() if what == "opened"]

    def lock(self) -> None:
        self.proc.stdin.write("lock\n")
        self.proc.stdin.flush()
        assert self._line().strip() == "held"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class Site:
    daemon: Daemon
    member: Member
    gid: int
    _holders: list[Holder] = field(default_factory=list)

    def holder(self, *paths: Path) -> Holder:
        h = Holder(self.member, list(paths), self.daemon.socket_path, self.daemon.marker)
        self._holders.append(h)
        return h

    def start(self) -> None:
        self.daemon.start(preexec_fn=lambda: os.setgid(self.gid))


@pytest.fixture
def site(system_users: SystemUsers, daemon_factory) -> Iterator[Site]:
    group, gid = system_users.group("users")
    name, uid, ugid = system_users.user("alice", (group,))
    top = Path(tempfile.mkdtemp(prefix="bh-locks-", dir="/tmp"))
    os.chmod(top, 0o755)
    root = top / "root"
    root.mkdir()
    os.chown(root, -1, gid)
    os.chmod(root, 0o750)           # StateDirectoryMode=0750, group benchd
    d = daemon_factory(start=False, root=root, socket_path=root / "run" / "benchd.sock")
    s = Site(d, Member(name, uid, ugid, sorted({ugid, gid})), gid)
    try:
        yield s
    finally:
        for h in s._holders:
            h.close()
        d.close()
        shutil.rmtree(top, ignore_errors=True)


ROOT_LOCKS = ("run/benchd.lock", "run/lock/benchd.lock")  # before and after the fix


def test_a_group_member_cannot_hold_the_root_lock_and_a_restart_succeeds(site: Site) -> None:
    d = site.daemon
    site.start()
    h = site.holder(*(d.root / p for p in ROOT_LOCKS))
    assert d.stop() == 0
    h.lock()                        # whatever they could open, they now hold
    site.start()                    # a restart is not refused
    assert d.get("/api/health").json()["pid"] == d.proc.pid
    assert h.opened() == [], h.seen
    assert h.seen["socket"] == "connected", h.seen  # the socket stays the group's
    lock = d.root / "run" / "lock"
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(lock / "benchd.lock").st_mode) == 0o600


def test_an_fd_on_an_older_benchds_lock_file_does_not_stop_the_upgrade(site: Site) -> None:
    """The upgrade: an older benchd left <root>/run/benchd.lock 0640 (group benchd), and a
    member opened it back then and holds it now. The new benchd starts, names them in a
    warning, and removes the old file."""
    d = site.daemon
    run = d.root / "run"
    run.mkdir(mode=0o750)
    os.chown(run, -1, site.gid)
    legacy = run / "benchd.lock"
    legacy.write_text("424242\n")
    os.chown(legacy, -1, site.gid)
    os.chmod(legacy, 0o640)
    h = site.holder(legacy)
    assert h.opened() == [str(legacy)]
    h.lock()
    site.start()
    err = d.stderr_text()
    assert f"pid {h.proc.pid} (user {site.member.name}" in err, err
    assert not legacy.exists()


_HELD_BY_A_CHILD = """# lock-holder-for-test
import os, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from benchd.server import lock_root
fd = lock_root(Path({root!r}))      # writes our pid into the file
if os.fork():
    os._exit(0)                     # the pid in the file is now a dead one
sys.stdout.write(f"{{os.getpid()}}\\n")
sys.stdout.flush()
sys.stdin.read()                    # the child holds the lock (inherited fd) until stdin closes
"""


def test_a_held_root_lock_names_its_real_holder_from_proc_locks(site: Site) -> None:
    """The process that locked the root wrote its pid in the file and exited; its child holds
    the lock through the fd it inherited. A benchd that cannot start names the child (pid,
    user, command), not the dead pid in the file."""
    d = site.daemon
    p = subprocess.Popen([sys.executable, "-c", _HELD_BY_A_CHILD.format(
        repo=str(REPO), root=str(d.root))], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env={**d.process_env()})
    try:
        child = int(p.stdout.readline())
        assert p.wait(timeout=30) == 0
        d.start(wait=False)
        assert d.proc.wait(timeout=30) == 1
        err = d.stderr_text()
        assert "already running on root" in err, err
        assert f"pid {child} (user root, command " in err and "lock-holder-for-test" in err, err
        assert f"pid {p.pid}" not in err, err
    finally:
        p.stdin.close()
    wait_until(lambda: not os.path.exists(f"/proc/{child}"), 20, 0.02, "the holder to exit")


def _staged_run(results: Path) -> str:
    """A staged run as the real pipeline leaves it after a crash: claimed and locked by
    pipeline.results (as benchd's user, as the orchestrator runs), manifest written, lock
    released."""
    from pipeline import results as pr
    from pipeline import schema
    pr.check_results_dir(results)
    run = pr.claim_run(results)
    run.write_manifest(schema.Manifest(
        run_id=run.run_id, status=schema.RUN_INTERRUPTED, created_at="2026-01-01T00:00:00Z",
        config=schema.RunConfigRecord(["gmst_era"], 10, 42, 1, True, False, 60.0),
        metadata=schema.Metadata("2026-01-01T00:00:00Z", "h", "cpu", 1, "os", "py", "np",
                                 None, None, {}, 42, [])))
    run.close()
    return run.run_id


def test_a_group_member_cannot_hold_a_staged_runs_lock(site: Site) -> None:
    """They read results/ (by design) but cannot open the run's lock: resume and discard
    work. Also for a run an older orchestrator left, whose `.lock` is group-readable and
    held by them."""
    d = site.daemon
    site.start()
    results = d.root / "results"
    for legacy in (False, True):
        run_id = _staged_run(results)
        run = results / ".staging" / run_id
        if legacy:
            old = run / ".lock"
            old.write_text("424242\n")
            os.chmod(old, 0o644)
        h = site.holder(*sorted(p for p in run.iterdir() if "lock" in p.name))
        h.lock()
        assert (run / "manifest.json").read_bytes()      # the group still reads results
        listed = {r["run_id"]: r for r in d.get("/api/results/staged").json()["runs"]}
        assert listed[run_id]["in_use"] is False, listed[run_id]
        r = d.post_json(JOBS, {"resume": run_id})
        assert r.status == 201, (r.status, r.body)
        d.wait_job(r.json()["job_id"])
        r = d.request("DELETE", f"/api/results/staged/{run_id}")
        assert r.status == 200, (r.status, r.body)
        assert not run.exists()
        assert h.opened() == ([str(run / ".lock")] if legacy else []), h.seen
        h.close()


def test_a_group_member_cannot_open_a_jobs_lock(site: Site) -> None:
    """logs/jobs/<id>.lock is read as "the supervisor lives": nobody else may hold it."""
    d = site.daemon
    d.set_spec(wait_for_file=str(d.root / "gate-never"))
    site.start()
    job = d.start_job()["job_id"]
    lock = d.root / "logs" / "jobs" / f"{job}.lock"
    wait_until(lambda: lock.exists(), 20, 0.02, "the job's lock")
    h = site.holder(lock)
    assert h.opened() == [], h.seen
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600
    assert d.post_json(f"{JOBS}/{job}/cancel").status == 200


def test_a_flock_on_an_older_jobs_lock_does_not_make_a_job_up(site: Site) -> None:
    """A job lock an older supervisor left (0644: the group could open it), of a job long
    gone (no record, no pid file), held by a member: it is not a supervisor at work, so
    benchd removes the stale file instead of rebuilding a job from it."""
    d = site.daemon
    jobs = d.root / "logs" / "jobs"
    jobs.mkdir(parents=True)
    lock = jobs / "0123456789ab.lock"
    lock.write_text("")
    os.chmod(lock, 0o644)
    h = site.holder(lock)
    assert h.opened() == [str(lock)]
    h.lock()
    site.start()
    assert d.get(JOBS).json()["jobs"] == []
    assert not lock.exists()

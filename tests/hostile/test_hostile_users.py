"""Other users: real system users and groups (useradd/groupadd, removed in teardown) talking
to a real benchd as themselves. The peer uid comes from SO_PEERCRED, so each client really
runs under the user's uid: a child process that imports what it needs as root, then drops
to the user (setgroups/setgid/setuid) before it connects. (Exec'ing the venv's python as
another user fails here: it lives under /root, mode 0700.)

Socket access follows the service layout: benchd runs with the users' group as its gid, so
the socket directory it creates (0750) and the socket (0660) belong to that group."""
from __future__ import annotations

import grp
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile.conftest import NEEDS_ROOT, SystemUsers
from tests.support.daemon import REPO, Daemon, wait_until

pytestmark = NEEDS_ROOT
JOBS = "/api/benchmark/jobs"

# modules a dropped child needs, imported while it is still root
_PRELUDE = """
import json, os, sys, socket, urllib.parse, encodings.idna, locale, gettext
import threading, argparse, hashlib, time, pwd, grp
sys.path.insert(0, {repo!r})
from tests.hostile import rawhttp
import benchctl.cli, benchctl.client, benchctl.discovery, benchctl.jobref, benchctl.render, benchctl.exitcodes
import benchctl.jsonout, benchctl.follow
import benchctl.commands.cancel, benchctl.commands.run, benchctl.commands.status
import benchctl.commands.history, benchctl.commands.results
import benchd.defaults, benchd.schema, benchd.states, msgspec
os.setgroups({groups!r}); os.setgid({gid}); os.setuid({uid})
assert os.getuid() == {uid} and os.geteuid() == {uid}
SOCK = {sock!r}
def out(obj): sys.stdout.write(json.dumps(obj)); sys.stdout.flush()
def http(method, path, body=None, headers=None):
    try:
        r = rawhttp.call(SOCK, method, path, body, headers)
    except OSError as e:
        return [None, type(e).__name__]
    try:
        return [r.status, r.json()]
    except ValueError:
        return [r.status, r.body.decode("latin-1")]
"""


@dataclass
class User:
    name: str
    uid: int
    gid: int
    groups: list[int]


@dataclass
class Lab:
    daemon: Daemon
    alice: User
    bob: User
    carol: User      # in the admin group
    mallory: User    # not in benchd's group: cannot even connect
    users_group: str

    def run(self, user: User, code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        prelude = _PRELUDE.format(repo=str(REPO), groups=user.groups, gid=user.gid,
                                  uid=user.uid, sock=str(self.daemon.socket_path))
        return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                              capture_output=True, text=True, timeout=timeout, cwd="/",
                              env={**self.daemon.process_env(), "BENCHD_SOCKET":
                                   str(self.daemon.socket_path)})

    def http(self, user: User, method: str, path: str, body: dict | None = None,
             headers: dict | None = None) -> tuple[int | None, object]:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})} if data else headers
        r = self.run(user, f"out(http({method!r}, {path!r}, {data!r}, {hdrs!r}))\n")
        assert r.returncode == 0, r.stderr
        status, body_ = json.loads(r.stdout)
        return status, body_

    def benchctl(self, user: User, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.run(user, f"sys.exit(benchctl.cli.main({list(argv)!r}))\n")


@pytest.fixture
def lab(system_users: SystemUsers, daemon_factory) -> Iterator[Lab]:
    users_group, users_gid = system_users.group("users")
    admin_group, _ = system_users.group("admin")

    def mk(base: str, *groups: str) -> User:
        name, uid, gid = system_users.user(base, groups)
        return User(name, uid, gid, sorted({gid, *(grp.getgrnam(g).gr_gid for g in groups)}))

    alice, bob = mk("alice", users_group), mk("bob", users_group)
    carol, mallory = mk("carol", users_group, admin_group), mk("mallory")
    sock_dir = Path(tempfile.mkdtemp(prefix="bh-users-", dir="/tmp"))
    os.chmod(sock_dir, 0o755)  # our own temp dir; benchd creates sock/ inside it, 0750
    d = daemon_factory(start=False, admin_group=admin_group, grace=1.0,
                       socket_path=sock_dir / "sock" / "benchd.sock")
    # benchd's gid is the users' group (as User=benchd Group=benchd would make it)
    d.start(preexec_fn=lambda: os.setgid(users_gid))
    d.set_spec(wait_for_file=str(d.root / "gate-never"))
    try:
        yield Lab(d, alice, bob, carol, mallory, users_group)
    finally:
        d.close()
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_socket_belongs_to_the_group_and_outsiders_cannot_connect(lab: Lab) -> None:
    sock = lab.daemon.socket_path
    users_gid = grp.getgrnam(lab.users_group).gr_gid
    for path, mode in ((sock.parent, 0o750), (sock, 0o660)):
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == mode and st.st_gid == users_gid, (path, oct(st.st_mode))
    status, err = lab.http(lab.mallory, "GET", "/api/health")
    assert status is None and err == "PermissionError"
    r = lab.benchctl(lab.mallory, "status")
    assert r.returncode == 69, (r.returncode, r.stderr)
    assert "permission denied" in r.stderr and str(sock) in r.stderr
    assert lab.http(lab.alice, "GET", "/api/health")[0] == 200


def test_requester_is_the_peer_uid_never_what_the_client_claims(lab: Lab) -> None:
    status, body = lab.http(lab.alice, "POST", JOBS, {"requester_uid": 0})
    assert status == 400 and body["error"]["message"].startswith("requester_uid"), body
    status, rec = lab.http(lab.alice, "POST", JOBS, {"experiments": ["gmst_era"]},
                           {"X-Remote-User": "root", "X-Forwarded-User": "root",
                            "Authorization": "Basic cm9vdDpyb290"})
    assert status == 201, rec
    assert rec["requester_uid"] == lab.alice.uid and rec["requester_name"] == lab.alice.name
    on_disk = json.loads((lab.daemon.root / "logs" / "jobs" / f"{rec['job_id']}.json").read_text())
    assert on_disk["requester_uid"] == lab.alice.uid
    # the job runs as the daemon's user: its files stay readable by benchd, and the log is
    # served to any member of the group
    log = lab.daemon.log_file(rec["job_id"])
    wait_until(lambda: b"fake orchestrator pid" in log.read_bytes(), 20, 0.02, "the job's log")
    assert os.stat(log).st_uid == os.getuid()
    status, text = lab.http(lab.bob, "GET", f"{JOBS}/{rec['job_id']}/logs")
    assert status == 200 and "fake orchestrator pid" in text
    assert lab.http(lab.alice, "POST", f"{JOBS}/{rec['job_id']}/cancel")[0] == 200


def test_users_cancel_their_own_not_others_admin_and_root_can(lab: Lab) -> None:
    d = lab.daemon
    # alice's job: bob may not cancel it (HTTP 403 naming the owner; benchctl exit 6)
    status, rec = lab.http(lab.alice, "POST", JOBS, {})
    assert status == 201
    job = rec["job_id"]
    status, body = lab.http(lab.bob, "POST", f"{JOBS}/{job}/cancel")
    assert status == 403 and body["error"]["code"] == "forbidden", body
    msg = body["error"]["message"]
    assert lab.alice.name in msg and str(lab.alice.uid) in msg and "admin group" in msg, msg
    r = lab.benchctl(lab.bob, "cancel", job)
    assert r.returncode == 6, (r.returncode, r.stdout, r.stderr)
    assert lab.alice.name in r.stderr
    assert d.job(job)["status"] == "running" and d.job(job)["cancel_requested_by"] is None
    # bob's start that refuses to queue is refused while it runs: 409 naming alice's job
    status, body = lab.http(lab.bob, "POST", JOBS, {"queue": False})
    assert status == 409 and job in body["error"]["message"]
    # alice may (benchctl cancel: exit 3, the job's outcome, once it ended cancelled)
    r = lab.benchctl(lab.alice, "cancel", job)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert "cancelled" in r.stdout
    final = d.job(job)
    assert final["status"] == "cancelled" and final["cancel_requested_by"] == lab.alice.uid
    # bob's job: carol (admin group) may cancel it
    status, rec = lab.http(lab.bob, "POST", JOBS, {})
    assert status == 201 and rec["requester_uid"] == lab.bob.uid
    status, final = lab.http(lab.carol, "POST", f"{JOBS}/{rec['job_id']}/cancel")
    assert status == 200 and final["status"] == "cancelled", final
    assert final["cancel_requested_by"] == lab.carol.uid
    # carol's job: root may cancel it; and a finished job is 409 for everyone
    status, rec = lab.http(lab.carol, "POST", JOBS, {})
    assert status == 201
    r = d.post_json(f"{JOBS}/{rec['job_id']}/cancel")
    assert r.status == 200 and r.json()["cancel_requested_by"] == 0
    status, body = lab.http(lab.carol, "POST", f"{JOBS}/{rec['job_id']}/cancel")
    assert status == 409 and body["error"]["code"] == "not_cancellable"


def test_users_give_notification_targets_only_to_their_own_jobs(lab: Lab) -> None:
    """bob cannot attach a target to alice's job (403), nor see her deliveries; alice can."""
    from tests.support.receivers import new_secret
    d = lab.daemon
    status, rec = lab.http(lab.alice, "POST", JOBS, {})
    assert status == 201
    job = rec["job_id"]
    target = {"url": "http://127.0.0.1:9/hook", "secret": new_secret(), "on": ["end"]}
    status, body = lab.http(lab.bob, "POST", f"{JOBS}/{job}/notify", target)
    assert status == 403 and body["error"]["code"] == "forbidden", body
    assert lab.alice.name in body["error"]["message"]
    status, body = lab.http(lab.alice, "POST", f"{JOBS}/{job}/notify", target)
    assert status == 201 and body == {"url": target["url"], "on": ["end"]}, body
    assert target["secret"] not in d.stderr_text()
    d.post_json(f"{JOBS}/{job}/cancel")       # root ends it: the event goes to alice's target
    status, body = lab.http(lab.bob, "GET", f"/api/notify/deliveries?job={job}")
    assert status == 200 and body["deliveries"] == []
    status, body = lab.http(lab.alice, "GET", f"/api/notify/deliveries?job={job}")
    assert status == 200 and [x["type"] for x in body["deliveries"]] == ["job.cancelled"]
    status, body = lab.http(lab.alice, "POST", f"{JOBS}/{job}/notify", target)
    assert status == 409 and body["error"]["code"] == "job_final", body


def test_two_users_racing_to_start_exactly_one_wins(lab: Lab) -> None:
    """Eight starts that refuse to queue at once from two users: one 201, seven 409s naming
    the winner's job."""
    code = """
    import threading
    res = []
    def go():
        res.append(http("POST", "/api/benchmark/jobs", b'{"queue": false}',
                        {"Content-Type": "application/json"}))
    ts = [threading.Thread(target=go) for _ in range(4)]
    [t.start() for t in ts]; [t.join() for t in ts]
    out(res)
    """
    procs = [subprocess.Popen([sys.executable, "-c", _PRELUDE.format(
        repo=str(REPO), groups=u.groups, gid=u.gid, uid=u.uid,
        sock=str(lab.daemon.socket_path)) + textwrap.dedent(code)],
        stdout=subprocess.PIPE, text=True, cwd="/") for u in (lab.alice, lab.bob)]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        results += json.loads(out)
    started = [b for s, b in results if s == 201]
    busy = [b for s, b in results if s == 409]
    assert len(started) == 1 and len(busy) == 7, results
    winner = started[0]["job_id"]
    assert all(winner in b["error"]["message"] for b in busy)
    assert [j["job_id"] for j in lab.daemon.get(JOBS).json()["jobs"]] == [winner]


def _traversable(path: Path) -> bool:
    """Every directory from / to `path` is searchable by others."""
    for p in [path, *path.parents]:
        if not os.stat(p).st_mode & stat.S_IXOTH:
            return False
    return True


def test_benchctl_exec_as_the_user_with_debian_python(lab: Lab) -> None:
    """The pitfall's alternative: Debian's python3.11 (same ABI as the venv's) run with
    runuser, PYTHONPATH = checkout + venv site-packages. A real process exec'd as alice."""
    py = Path("/usr/bin/python3.11")
    site = REPO / ".venv" / "lib" / "python3.11" / "site-packages"
    runuser = shutil.which("runuser")
    if not py.exists() or runuser is None:
        pytest.skip("needs /usr/bin/python3.11 and runuser")
    if not (_traversable(REPO) and _traversable(site)):
        pytest.skip(f"{REPO} or its venv is not traversable by other users (e.g. a clone "
                    "under /root): the fork-and-drop tests above cover this")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{site}",
           "BENCHD_SOCKET": str(lab.daemon.socket_path), "PYTHONDONTWRITEBYTECODE": "1",
           "BENCHD_TEST_MARKER": lab.daemon.marker}

    def bc(user: User, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([runuser, "-u", user.name, "--", str(py), "-m", "benchctl", *argv],
                              capture_output=True, text=True, timeout=60, env=env, cwd="/")

    r = bc(lab.alice, "run", "--json", "-e", "gmst_era")
    assert r.returncode == 0, (r.returncode, r.stderr)
    rec = json.loads(r.stdout)
    assert rec["requester_uid"] == lab.alice.uid and rec["requester_name"] == lab.alice.name
    r = bc(lab.bob, "cancel", rec["job_id"])
    assert r.returncode == 6, (r.returncode, r.stderr)
    r = bc(lab.alice, "cancel", rec["job_id"])
    assert r.returncode == 3 and "cancelled" in r.stdout, (r.returncode, r.stderr)
    assert lab.daemon.job(rec["job_id"])["cancel_requested_by"] == lab.alice.uid


def test_users_discard_their_own_staged_runs_not_others(lab: Lab) -> None:
    """A staged run belongs to whoever's job worked on it (its progress named the run): bob
    may not discard alice's (403 naming her; benchctl exit 6), alice and carol (admin) may; a
    run no benchd job worked on is for root and the admin group only. (The fake orchestrator
    names a run in its progress but writes no staging files, so the test makes the staged
    directories the real pipeline would have left.)"""
    d = lab.daemon
    staging = d.root / "results" / ".staging"
    status, rec = lab.http(lab.alice, "POST", JOBS, {})
    assert status == 201
    job = rec["job_id"]
    wait_until(lambda: (d.job(job).get("progress") or {}).get("run_id"), 20, 0.02,
               "the job's run id")
    run_id = d.job(job)["progress"]["run_id"]
    _stage(staging, run_id)
    # while alice's job works on it, nobody may discard it
    status, body = lab.http(lab.alice, "DELETE", f"/api/results/staged/{run_id}")
    assert status == 409 and job in body["error"]["message"], body
    assert lab.http(lab.alice, "POST", f"{JOBS}/{job}/cancel")[0] == 200
    status, body = lab.http(lab.bob, "DELETE", f"/api/results/staged/{run_id}")
    assert status == 403 and lab.alice.name in body["error"]["message"], body
    r = lab.benchctl(lab.bob, "results", "--discard", run_id)
    assert r.returncode == 6 and lab.alice.name in r.stderr, (r.returncode, r.stderr)
    assert (staging / run_id / "gmst_era").is_dir()
    # resuming her run does not make it bob's: anyone may finish a run, only its owner
    # (root, the admin group) may throw it away
    status, rec = lab.http(lab.bob, "POST", JOBS, {"resume": run_id})
    assert status == 201, rec
    wait_until(lambda: d.job(rec["job_id"])["status"] not in ("starting", "running"), 20,
               0.02, "bob's resume job to end")  # the fake orchestrator has no --resume
    status, body = lab.http(lab.bob, "DELETE", f"/api/results/staged/{run_id}")
    assert status == 403 and lab.alice.name in body["error"]["message"], body
    assert (staging / run_id / "gmst_era").is_dir()
    r = lab.benchctl(lab.alice, "results", "--discard", run_id)
    assert r.returncode == 0 and f"discarded staged run {run_id} (0/2" in r.stdout, r.stderr
    assert not (staging / run_id).exists() and os.listdir(staging) == []
    r = lab.benchctl(lab.alice, "results", "--discard", run_id)
    assert r.returncode == 4 and "no staged run" in r.stderr, r.stderr
    # a run left by an orchestrator started by hand: admin group yes, others no
    orphan = "2020-01-01_00-00-00"
    (staging / orphan).mkdir()      # no manifest: a run that broke before writing one
    status, body = lab.http(lab.alice, "DELETE", f"/api/results/staged/{orphan}")
    assert status == 403 and "not started through benchd" in body["error"]["message"], body
    status, body = lab.http(lab.carol, "DELETE", f"/api/results/staged/{orphan}")
    assert status == 200 and body == {"run_id": orphan, "run": None}, body
    assert os.listdir(staging) == []


def _stage(staging: Path, run_id: str) -> None:
    """The staged run an interrupted orchestrator leaves: its directory and manifest."""
    from pipeline import schema
    (staging / run_id / "gmst_era").mkdir(parents=True)
    m = schema.Manifest(
        run_id=run_id, status=schema.RUN_INTERRUPTED, created_at="2026-01-01T00:00:00Z",
        config=schema.RunConfigRecord(["gmst_era", "kepler_solver"], 10, 42, 1, True, False,
                                      60.0),
        metadata=schema.Metadata("2026-01-01T00:00:00Z", "h", "cpu", 1, "os", "py", "np",
                                 None, None, {}, 42, []))
    (staging / run_id / "manifest.json").write_bytes(schema.encode(m))

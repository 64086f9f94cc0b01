"""benchd as a system service under a real systemd (ct-boot): socket activation, jobs that
survive restart / crash / watchdog, stop policies, cancel clean-up, socket permissions, and
the units' verification and security score. Each test boots its own container (~0.5 s)."""
from __future__ import annotations

import json
import re

import pytest

from tests.systemd.ctlib import (POLL_S, REPO, SOCKET, STATE, TEST_DIR, UNIT, Container,
                                 wait_until)

pytestmark = [pytest.mark.systemd, pytest.mark.timeout(120)]

GO = f"{TEST_DIR}/go"          # the fake orchestrator blocks until this file exists
LINES = 40


def held_job(ct: Container, **spec: object) -> dict:
    """Start a job that prints LINES lines and then waits for GO; return it once running."""
    job = ct.start_job({"lines": LINES, "wait_for_file": GO, **spec})
    return ct.wait_status(job["job_id"], {"running"})


def release_and_finish(ct: Container, job_id: str) -> dict:
    ct.write(GO, "go\n")
    return ct.wait_status(job_id, {"completed", "failed", "cancelled", "unknown"}, timeout=60)


def assert_completed_with_full_log(ct: Container, job_id: str) -> None:
    rec = ct.job(job_id)
    assert rec["status"] == "completed", rec
    assert rec["exit_code"] == 0, rec
    log = ct.log(job_id)
    got = [ln for ln in log.splitlines() if re.fullmatch(r"line \d+ of \d+", ln)]
    assert got == [f"line {i} of {LINES}" for i in range(LINES)], log  # all, once, in order


def restarted(ct: Container, old_pid: int, timeout: float = 30) -> int:
    """Wait until benchd runs again under a new main pid and answers; return that pid."""
    def new_pid() -> int:
        s = ct.show(UNIT, "MainPID", "ActiveState")
        pid = int(s["MainPID"])
        return pid if pid not in (0, old_pid) and s["ActiveState"] == "active" else 0
    pid = wait_until(new_pid, timeout, interval=POLL_S,
                     what="benchd to be running again under a new pid")
    ct.health()
    return pid


def test_socket_activation_starts_benchd_and_reports_status(ct: Container) -> None:
    assert ct.show(UNIT, "ActiveState")["ActiveState"] == "inactive"
    assert ct.show("benchd.socket", "ActiveState")["ActiveState"] == "active"
    # a malformed job record: benchd moves it aside with a warning (priority 4 in the journal)
    ct.run("install", "-d", "-o", "benchd", "-g", "benchd", "/var/lib/benchd/logs",
           "/var/lib/benchd/logs/jobs")
    ct.write("/var/lib/benchd/logs/jobs/0123456789ab.json", "{not json")
    # the first client call starts benchd; benchctl finds the system socket by itself
    out = ct.run(str(REPO / ".venv" / "bin" / "benchctl"), "status", "--json", timeout=90)
    health = json.loads(out.stdout)
    assert health["status"] == "ok"
    assert health["socket"] == SOCKET
    assert health["root"] == "/var/lib/benchd"
    # install-service also installed `man benchctl`, generated from benchctl's parsers
    page = ct.run("cat", "/usr/local/share/man/man1/benchctl.1").stdout
    assert page.startswith(".TH BENCHCTL 1") and ".SS completion" in page
    s = ct.show(UNIT, "ActiveState", "SubState", "StatusText", "MainPID", "User")
    assert s["ActiveState"] == "active" and s["SubState"] == "running", s
    assert s["StatusText"].startswith("idle"), s
    assert int(s["MainPID"]) == health["pid"]
    # runs as the unprivileged user, socket 0660 root:benchd in a 0750 benchd:benchd dir
    owner = ct.run("stat", "-c", "%U", f"/proc/{health['pid']}").stdout.strip()
    assert owner == "benchd"
    assert ct.run("stat", "-c", "%a %U %G", SOCKET).stdout.split() == ["660", "root", "benchd"]
    assert ct.run("stat", "-c", "%a %U %G", "/run/benchd").stdout.split() == [
        "750", "benchd", "benchd"]
    # systemctl status shows the STATUS text
    status = ct.systemctl("status", "--no-pager", UNIT, check=False).stdout
    assert 'Status: "idle' in status, status
    # journal: benchd's lines carry syslog priorities and no timestamp of their own
    entries = [e for e in ct.journal_json() if e.get("_PID") == str(health["pid"])]
    assert entries, "no journal entries from benchd"
    ready = [e for e in entries if "ready on" in e.get("MESSAGE", "")]
    assert ready and ready[0]["PRIORITY"] == "6", ready
    warned = [e for e in entries
              if e.get("MESSAGE", "").startswith("benchd.store: malformed job record 0123")]
    assert len(warned) == 1 and warned[0]["PRIORITY"] == "4", warned
    assert not any(re.match(r"\d{4}-\d\d-\d\d", e.get("MESSAGE", "")) for e in entries)
    assert not any(e.get("MESSAGE", "").startswith("<") for e in entries)


def test_status_text_follows_the_job(ct: Container) -> None:
    job = held_job(ct)
    text = wait_until(lambda: (t := ct.show(UNIT, "StatusText")["StatusText"])
                      .startswith("running") and t, 10, interval=POLL_S,
                      what="STATUS= to say running")
    assert job["job_id"] in text
    release_and_finish(ct, job["job_id"])
    wait_until(lambda: ct.show(UNIT, "StatusText")["StatusText"].startswith("idle"), 10,
               interval=POLL_S, what="STATUS= to say idle again")


def test_restart_mid_job_keeps_the_job(ct: Container) -> None:
    job = held_job(ct)
    old = ct.main_pid()
    sup = job["supervisor_pid"]
    ct.systemctl("restart", UNIT)
    restarted(ct, old)
    rec = ct.job(job["job_id"])
    assert rec["status"] == "running", rec
    assert rec["supervisor_pid"] == sup
    assert sup in ct.cgroup_procs(), "the job's supervisor is no longer in the unit's cgroup"
    assert "reattached" in ct.show(UNIT, "StatusText")["StatusText"]
    release_and_finish(ct, job["job_id"])
    assert_completed_with_full_log(ct, job["job_id"])


def test_reinstall_mid_job_restarts_benchd_and_keeps_the_job(ct: Container) -> None:
    """Re-running install-service (an upgrade) restarts a running benchd; the job survives."""
    job = held_job(ct)
    old = ct.main_pid()
    out = ct.run(str(REPO / "scripts" / "install-service"), "--use-venv", str(REPO / ".venv"),
                 timeout=120)
    assert "benchd answers on" in out.stdout, out.stdout
    assert restarted(ct, old) != old
    assert ct.job(job["job_id"])["status"] == "running"
    release_and_finish(ct, job["job_id"])
    assert_completed_with_full_log(ct, job["job_id"])


def test_sigkill_of_benchd_is_restarted_and_job_reattached(ct: Container) -> None:
    job = held_job(ct)
    old = ct.main_pid()
    # a crash: only the main process dies (a bare `systemctl kill` would signal the whole
    # cgroup, jobs included: that is the way to kill everything)
    ct.systemctl("kill", "--kill-who=main", "-s", "KILL", UNIT)
    restarted(ct, old)
    assert int(ct.show(UNIT, "NRestarts")["NRestarts"]) == 1
    assert ct.job(job["job_id"])["status"] == "running"
    release_and_finish(ct, job["job_id"])
    assert_completed_with_full_log(ct, job["job_id"])


def test_watchdog_restarts_a_frozen_benchd(booted: Container) -> None:
    ct = booted
    ct.dropin("60-watchdog.conf", "[Service]\nWatchdogSec=2\nTimeoutAbortSec=1\n")
    ct.systemctl("start", "benchd.socket")
    job = held_job(ct)
    old = ct.main_pid()
    ct.run("kill", "-STOP", str(old))  # the loop can no longer ping
    restarted(ct, old, timeout=30)
    assert "watchdog timeout" in ct.journal().lower()
    assert int(ct.show(UNIT, "NRestarts")["NRestarts"]) >= 1
    assert ct.job(job["job_id"])["status"] == "running"
    release_and_finish(ct, job["job_id"])
    assert_completed_with_full_log(ct, job["job_id"])


def test_stop_with_on_stop_leave_keeps_the_job(ct: Container) -> None:
    job = held_job(ct)
    sup = job["supervisor_pid"]
    ct.systemctl("stop", UNIT)
    s = ct.show(UNIT, "ActiveState", "MainPID")
    assert s["ActiveState"] in ("inactive", "failed") and s["MainPID"] == "0", s
    assert sup in ct.cgroup_procs(), "stop killed the job's supervisor"
    # the job finishes while benchd is down; the next connection starts benchd, which
    # finalizes it from what the supervisor wrote
    ct.write(GO, "go\n")
    wait_until(lambda: sup not in ct.cgroup_procs(), 30,
               interval=POLL_S, what="the job to end while benchd is down")
    ct.health()
    assert_completed_with_full_log(ct, job["job_id"])


def test_stop_with_on_stop_cancel_cancels_the_job(booted: Container) -> None:
    ct = booted
    ct.install("--on-stop", "cancel", "--grace", "3")  # rewrites /etc/default/benchd
    assert "BENCHD_ON_STOP=cancel" in ct.run("cat", "/etc/default/benchd").stdout
    # a stop timeout shorter than the grace: benchd's EXTEND_TIMEOUT_USEC must cover it
    ct.dropin("60-short-stop.conf", "[Service]\nTimeoutStopSec=1\n")
    ct.systemctl("start", "benchd.socket")
    job = held_job(ct, ignore_sigterm=True)  # needs the SIGKILL after the grace
    assert "--on-stop cancel" in ct.cmdline(ct.main_pid())
    ct.systemctl("stop", UNIT)
    assert ct.cgroup_procs() == [], "stop with on-stop=cancel left job processes behind"
    assert "timed out" not in ct.journal(), "systemd had to kill benchd (TimeoutStopSec)"
    assert ct.show(UNIT, "Result")["Result"] == "success"
    ct.health()
    rec = ct.job(job["job_id"])
    assert rec["status"] == "cancelled", rec


def test_cancel_leaves_no_process_of_the_job(ct: Container) -> None:
    job = held_job(ct, double_fork=True)  # also leaves a setsid'd grandchild
    main = ct.main_pid()
    # benchd, supervisor, orchestrator and its escaped grandchild, all in the unit's cgroup
    wait_until(lambda: any("fake-orchestrator-grandchild" in ct.cmdline(p)
                           for p in ct.cgroup_procs()), 10, interval=POLL_S,
               what="the double-forked grandchild")
    assert len(ct.cgroup_procs()) >= 4, ct.cgroup_procs()
    status, rec = ct.api("POST", f"/api/benchmark/jobs/{job['job_id']}/cancel", {"grace": 2})
    assert status == 200, rec
    assert rec["status"] == "cancelled", rec
    # the supervisor exits right after writing the final record: give it a moment
    wait_until(lambda: ct.cgroup_procs() == [main], 10,
               interval=POLL_S, what="only benchd left in the unit's cgroup")


CONNECT = ("import socket, sys\n"
           "s = socket.socket(socket.AF_UNIX)\n"
           "try:\n    s.connect(sys.argv[1])\n"
           "except OSError as e:\n    print('refused', e.errno); sys.exit(3)\n"
           "s.sendall(b'GET /api/health HTTP/1.0\\r\\n\\r\\n')\n"
           "print(b''.join(iter(lambda: s.recv(65536), b'')).split(b'\\r\\n')[0].decode())\n")


def test_only_group_benchd_may_connect(ct: Container) -> None:
    ct.run("useradd", "--create-home", "alice")
    ct.run("useradd", "--create-home", "mallory")
    ct.run("usermod", "-aG", "benchd", "alice")
    py = "/usr/bin/python3"  # system python: readable by every user (stdlib only here)
    out = ct.run(py, "-c", CONNECT, SOCKET, user="mallory", check=False)
    assert out.returncode == 3 and "refused 13" in out.stdout, (out.stdout, out.stderr)  # EACCES
    out = ct.run(py, "-c", CONNECT, SOCKET, user="alice")
    assert re.fullmatch(r"HTTP/1\.[01] 200 OK", out.stdout.strip()), out.stdout


def test_units_verify_clean_and_security_score(booted: Container) -> None:
    ct = booted
    # the shipped units as they are, with /opt/benchd/venv present (here: the checkout's venv)
    ct.run("mkdir", "-p", "/opt/benchd")
    ct.run("ln", "-sfn", str(REPO / ".venv"), "/opt/benchd/venv")
    d = "/etc/systemd/system"
    out = ct.run("systemd-analyze", "verify", f"{d}/benchd.socket", f"{d}/benchd.service",
                 check=False)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == "", (out.stdout, out.stderr)
    sec = ct.run("systemd-analyze", "security", "--no-pager", "--offline=true",
                 str(REPO / "systemd" / "benchd.service"), check=False)
    m = re.search(r"Overall exposure level for benchd\.service: (\d+\.\d+)", sec.stdout)
    assert m, sec.stdout + sec.stderr
    assert float(m.group(1)) <= 2.5, sec.stdout
    # and the live service with the test drop-ins, as systemd runs it
    ct.systemctl("start", "benchd.socket")
    ct.health()
    live = ct.run("systemd-analyze", "security", "--no-pager", UNIT, check=False)
    m = re.search(r"Overall exposure level for benchd\.service: (\d+\.\d+)", live.stdout)
    assert m and float(m.group(1)) <= 2.5, live.stdout
    closed = float(m.group(1))
    # the notifications drop-in opens the network (webhooks, SMTP) and stays within 2.5
    ct.run("cp", str(REPO / "systemd" / "benchd-notify.conf"),
           f"{d}/benchd.service.d/20-notify.conf")
    ct.systemctl("daemon-reload")
    out = ct.run("systemd-analyze", "verify", f"{d}/benchd.service", check=False)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == "", (out.stdout, out.stderr)
    net = ct.run("systemd-analyze", "security", "--no-pager", UNIT, check=False)
    m = re.search(r"Overall exposure level for benchd\.service: (\d+\.\d+)", net.stdout)
    assert m and closed < float(m.group(1)) <= 2.5, (closed, net.stdout)  # it did apply


@pytest.mark.timeout(420)
def test_real_pipeline_runs_inside_the_sandbox(booted: Container) -> None:
    """The real orchestrator (every experiment, every library, --ci sizes) under the unit's
    full hardening: MemoryDenyWriteExecute, the syscall filter, no network, read-only /."""
    ct = booted
    ct.run("rm", "/etc/systemd/system/benchd.service.d/50-test.conf")  # no fake orchestrator
    ct.systemctl("daemon-reload")
    ct.systemctl("start", "benchd.socket")
    status, job = ct.api("POST", "/api/benchmark/jobs", {"ci": True}, timeout=60)
    assert status == 201, job
    rec = ct.wait_status(job["job_id"], {"completed", "failed", "cancelled", "unknown"},
                         timeout=300)
    log = ct.log(job["job_id"])
    assert rec["status"] == "completed" and rec["exit_code"] == 0, (rec, log)
    results = [m.groups() for ln in log.splitlines()
               if (m := re.match(r"\[\d/9\] \w+ · (\w+): (\w+)", ln))]
    assert len(results) >= 9 * 3, log
    # novas is optional (a C build); everything else must have run, not just been skipped
    bad = [r for r in results if r[1] != "ok" and r != ("novas", "skipped")]
    assert not bad, (bad, log)
    # results are the service's, readable by group benchd only (UMask=0027)
    run_dir = f"/var/lib/benchd/{rec['run_dir']}"
    assert ct.run("stat", "-c", "%a %U %G", run_dir).stdout.split() == ["750", "benchd", "benchd"]
    status, runs = ct.api("GET", "/api/results")
    assert status == 200 and [r["run_id"] for r in runs["runs"]] == [rec["run_dir"].split("/")[-1]]


def test_default_install_runs_the_unit_as_shipped(booted: Container) -> None:
    """install-service without --use-venv: code copied to /opt/benchd/src, a venv built from
    the system Python at /opt/benchd/venv, no ExecStart drop-in, ProtectHome=yes as shipped;
    it starts the socket itself and checks /api/health through it."""
    ct = booted
    ct.run("rm", "-r", "/etc/systemd/system/benchd.service.d")
    out = ct.run(str(REPO / "scripts" / "install-service"), "--add-user", "nobody", timeout=300)
    assert "benchd answers on /run/benchd/benchd.sock" in out.stdout, out.stdout
    assert ct.run("ls", "/etc/systemd/system/benchd.service.d", check=False).stdout == ""
    pid = ct.main_pid()
    assert ct.cmdline(pid).split()[1] == "/opt/benchd/venv/bin/benchd", ct.cmdline(pid)
    health = ct.health()
    assert health["pid"] == pid
    assert "benchd" in ct.run("id", "-nG", "nobody").stdout.split()
    # a member uses benchctl as installed (on PATH); a non-member is told why they cannot
    benchctl = "/usr/local/bin/benchctl"
    assert ct.run("readlink", benchctl).stdout.strip() == "/opt/benchd/venv/bin/benchctl"
    out = ct.run(benchctl, "status", user="nobody")
    assert f"pid {pid}" in out.stdout and "no job running" in out.stdout, out.stdout
    out = ct.run(benchctl, "status", user="daemon", check=False)
    assert out.returncode == 69 and "permission denied" in out.stderr, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert ct.show("benchd.socket", "UnitFileState")["UnitFileState"] == "enabled"


BAD_USAGE = [
    (["--on-stop", "never"], "--on-stop must be leave or cancel, got 'never'"),
    (["--grace", "3601"], "--grace must be > 0 and <= 3600 s"),
    (["--grace"], "--grace needs a value"),
    (["--add-user", "nosuchuser"], "--add-user: no user named 'nosuchuser'"),
    (["--use-venv", "/nonexistent"], "--use-venv: no directory /nonexistent"),
]


def test_install_service_refuses_bad_usage_and_changes_nothing(bare: Container) -> None:
    for args, message in BAD_USAGE:
        out = bare.run(str(REPO / "scripts" / "install-service"), *args, check=False)
        assert out.returncode == 2 and message in out.stderr, (args, out.returncode, out.stderr)
    assert bare.run("getent", "passwd", "benchd", check=False).returncode != 0
    assert bare.run("test", "-e", "/etc/systemd/system/benchd.service",
                    check=False).returncode != 0


# A group member's attempt to block the next start: it opens whatever lock file it can reach
# while benchd runs and queues a shared flock on it, granted the moment benchd exits.
HOLD = ("import fcntl, os, signal, sys\n"
        "fds = []\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        fds.append(os.open(p, os.O_RDONLY)); print('opened', p, flush=True)\n"
        "    except OSError as e:\n"
        "        print('cannot open', p, e.strerror, flush=True)\n"
        "print('ready', flush=True)\n"
        "for fd in fds:\n"
        "    fcntl.flock(fd, fcntl.LOCK_SH)\n"
        "print('holding', flush=True)\n"
        "signal.pause()\n")


def test_a_group_member_cannot_stop_benchd_restarting(ct: Container) -> None:
    ct.run("useradd", "--create-home", "alice")
    ct.run("usermod", "-aG", "benchd", "alice")
    ct.health()                         # socket-activated: benchd runs and holds its lock
    old = ct.main_pid()
    locks = [f"{STATE}/run/benchd.lock", f"{STATE}/run/lock/benchd.lock"]  # old and new place
    ct.run("systemd-run", "--unit=lock-holder", "--uid=alice", "/usr/bin/python3", "-c", HOLD,
           *locks)
    try:
        wait_until(lambda: "ready" in ct.journal("lock-holder.service"), 30, interval=POLL_S,
                   what="the group member's lock holder to have opened what it can")
        res = ct.systemctl("restart", UNIT, check=False)
        assert res.returncode == 0, (res.stdout, res.stderr, ct.journal()[-3000:])
        restarted(ct, old)
        holder = ct.journal("lock-holder.service")
        assert "opened" not in holder and holder.count("cannot open") == 2, holder
        assert ct.show(UNIT, "ActiveState")["ActiveState"] == "active"
        assert ct.show("benchd.socket", "ActiveState")["ActiveState"] == "active"
    finally:
        ct.systemctl("stop", "lock-holder.service", check=False)

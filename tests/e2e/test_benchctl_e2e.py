"""benchctl end to end: the real `benchctl` console script against a real benchd subprocess on
a real Unix socket (tests/support/daemon.py), jobs run by the fake orchestrator (and once by
the real pipeline). Covers every command, every exit code that can be provoked here, --json
shapes, tail -f across a kill -9 + restart of benchd, SIGINT, a pseudo-terminal, pipes."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from benchd.schema import Health, JobConfig, JobList, JobRecord
from benchd.states import JobState
from benchd.store import Store
from tests.support.benchctl_run import BENCHCTL, bc, env_for
from tests.support.daemon import Daemon, daemon_factory, wait_until  # noqa: F401 (fixture)
from tests.support.terminal import in_pty

REPO = Path(__file__).resolve().parents[2]
JOB_ID = re.compile(r"^[0-9a-f]{12}$")
CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n


def spawn(d: Daemon, *args: str, stdout: Any = subprocess.PIPE, **extra_env: str
          ) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*BENCHCTL, *args], stdout=stdout, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env_for(d, **extra_env))


def finish(proc: subprocess.Popen[bytes], timeout: float = 30) -> tuple[int, bytes, bytes]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    return proc.returncode, out or b"", err or b""


@contextmanager
def spawned_into(d: Daemon, out_path: Path, gate: Path, *args: str
                 ) -> Iterator[subprocess.Popen[bytes]]:
    """benchctl ARGS with its stdout in out_path; on the way out, whatever happened, the held
    job is let go (gate) and benchctl is reaped."""
    with open(out_path, "wb") as out:
        proc = spawn(d, *args, stdout=out)
    try:
        yield proc
    finally:
        gate.touch()
        finish(proc, 5)


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """Create this file to let a held fake-orchestrator job finish."""
    return tmp_path / "gate"


# --- run / wait / follow and the job outcome exit codes -----------------------------------

def test_run_prints_id_and_wait_exits_with_outcome(daemon_factory) -> None:
    d = daemon_factory()
    r = bc(d, "run", "-e", "gmst_era", "--ci")
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip()
    assert JOB_ID.match(job_id)
    rec = d.wait_job(job_id)
    assert rec["status"] == "completed" and rec["config"]["experiments"] == ["gmst_era"]
    assert rec["config"]["ci"] is True

    r = bc(d, "run", "--wait", "-e", "gmst_era", "-e", "equ_ecl", "--n", "7", "--seed", "3",
           "--perf-rounds", "2", "--no-perf")
    assert r.returncode == 0 and "completed" in r.stderr, r.stderr
    latest = d.get("/api/benchmark/jobs?limit=1").json()["jobs"][0]
    assert latest["config"] == {"experiments": ["gmst_era", "equ_ecl"], "n": 7, "seed": 3,
                                "perf_rounds": 2, "no_perf": True}

    d.set_spec(exit_code=3, stderr_line="boom on stderr")
    r = bc(d, "run", "--wait")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "failed" in r.stderr and "code 3" in r.stderr and "boom on stderr" in r.stderr


def test_run_of_a_job_that_cannot_start_exits_1_saying_why(daemon_factory,
                                                            tmp_path: Path) -> None:
    d = daemon_factory(orchestrator=[str(tmp_path / "no-such-orchestrator")])
    r = bc(d, "run")
    assert r.returncode == 1 and JOB_ID.match(r.stdout.strip()), (r.returncode, r.stderr)
    assert "failed" in r.stderr and "no-such-orchestrator" in r.stderr
    r = bc(d, "run", "--follow")
    assert r.returncode == 1 and "no-such-orchestrator" in r.stdout  # the job's log
    assert "started" not in r.stderr


def test_run_wait_json_is_final_record(daemon_factory) -> None:
    d = daemon_factory()
    r = bc(d, "run", "--wait", "--json", "-e", "gmst_era")
    assert r.returncode == 0, r.stderr
    rec = msgspec.json.decode(r.stdout, type=JobRecord)
    assert rec.status is JobState.COMPLETED and rec.exit_code == 0
    assert rec.config == JobConfig(experiments=["gmst_era"])
    r = bc(d, "run", "--json")
    started = msgspec.json.decode(r.stdout, type=JobRecord)
    assert r.returncode == 0 and started.status in (JobState.RUNNING, JobState.COMPLETED,
                                                    JobState.STARTING)


def test_busy_usage_and_cancel_exit_codes(daemon_factory, gate: Path) -> None:
    d = daemon_factory()
    d.set_spec(wait_for_file=str(gate), lines=2)
    waiter = spawn(d, "run", "--wait", "-e", "gmst_era")
    try:
        job = wait_until(lambda: d.get("/api/health").json()["active_job"], 15,
                         what="job active")
        job_id = job["job_id"]
        r = bc(d, "run", "--no-queue")       # the one slot is taken: refused, not queued
        assert r.returncode == 5 and job_id in r.stderr, (r.returncode, r.stderr)
        wait_until(lambda: (d.job(job_id).get("progress") or {}).get("total"), 15,
                   what="progress parsed from the job's log")
        r = bc(d, "status")
        assert r.returncode == 0 and job_id in r.stdout and "running" in r.stdout
        assert "1/1 experiments · gmst_era" in r.stdout
        r = bc(d, "cancel", job_id[:5], "--grace", "2")
        assert r.returncode == 3, r.stderr  # cancel exits with the job's outcome
        assert f"job {job_id} cancelled" in r.stdout
        code, _, err = finish(waiter)
        assert code == 3, err  # run --wait reports the cancellation as exit 3
        assert b"cancelled" in err
    finally:
        gate.touch()
        finish(waiter, 10)
    r = bc(d, "cancel", job_id)
    assert r.returncode == 8 and job_id in r.stderr, r.stderr
    r = bc(d, "cancel")
    assert r.returncode == 4 and "no job is running" in r.stderr
    r = bc(d, "run", "--n", "0")
    assert r.returncode == 2 and "n" in r.stderr and "between" in r.stderr, r.stderr
    r = bc(d, "run", "-e", "gmst_era,bogus")
    assert r.returncode == 2 and "bogus" in r.stderr and "experiments" in r.stderr


def test_cancel_json_decodes(daemon_factory, gate: Path) -> None:
    d = daemon_factory()
    d.set_spec(wait_for_file=str(gate))
    job_id = bc(d, "run").stdout.strip()
    d.wait_job(job_id, ("running",))
    r = bc(d, "cancel", "--json")
    assert r.returncode == 3, r.stderr
    rec = msgspec.json.decode(r.stdout, type=JobRecord)
    assert rec.job_id == job_id and rec.status is JobState.CANCELLED
    assert rec.cancel_requested_by == os.getuid()


def test_unknown_jobs_and_prefixes(daemon_factory) -> None:
    d = daemon_factory(start=False)
    store = Store(d.root)
    for jid in ("abc000000001", "abc000000002", "def000000003"):
        store.save(JobRecord(job_id=jid, status=JobState.COMPLETED, config=JobConfig(),
                             requester_uid=0, requester_name="root",
                             created_at="2026-11-01T00:00:00.000+00:00"))
        d.log_file(jid).write_text(f"log of {jid}\n")
    d.start()
    for args in (("status", "ffffffffffff"), ("logs", "0"), ("tail", "nope"),
                 ("cancel", "ffff")):
        r = bc(d, *args)
        assert r.returncode == 4, (args, r.returncode, r.stderr)
    r = bc(d, "status", "abc")
    assert r.returncode == 2 and "ambiguous" in r.stderr and "abc000000001" in r.stderr
    r = bc(d, "logs", "def")
    assert r.returncode == 0 and r.stdout == "log of def000000003\n"
    r = bc(d, "status", "abc000000002", "--json")
    assert msgspec.json.decode(r.stdout, type=JobRecord).job_id == "abc000000002"


def test_outcome_unknown_exit_7_after_restart(daemon_factory, gate: Path) -> None:
    """The job's supervisor dies while benchd is down: its outcome cannot be known; a
    `run --wait` that was waiting rides through the restart and exits 7."""
    d = daemon_factory()
    d.set_spec(wait_for_file=str(gate))
    waiter = spawn(d, "run", "--wait")
    try:
        job = wait_until(lambda: (d.get("/api/health").json()["active_job"] or {})
                         .get("pgid") and d.get("/api/health").json()["active_job"], 15,
                         what="job running with a pgid")
        d.kill9()
        os.kill(job["supervisor_pid"], signal.SIGKILL)
        os.killpg(job["pgid"], signal.SIGKILL)
        d.start()
        code, _, err = finish(waiter, 40)
        assert code == 7, (code, err)
        assert b"unknown?" in err or b"unknown" in err
    finally:
        gate.touch()
        finish(waiter, 5)


# --- logs, tail, follow ---------------------------------------------------------------------

@pytest.mark.parametrize("how", ["kill9", "sigterm"])
def test_tail_follow_survives_benchd_restart_byte_for_byte(daemon_factory, gate: Path,
                                                           tmp_path: Path, how: str) -> None:
    d = daemon_factory()
    d.set_spec(lines=40, lines_per_s=40, wait_for_file=str(gate))
    job_id = d.start_job(experiments=["gmst_era", "equ_ecl"])["job_id"]
    out_path = tmp_path / "tail.out"
    log = d.log_file(job_id)
    with spawned_into(d, out_path, gate, "tail", "-f", "-n", "100000", job_id[:6],
                      "--reconnect-timeout", "30") as tail:
        wait_until(lambda: out_path.read_bytes().count(b"\n") >= 5, 15,
                   what="tail printed lines")
        d.kill9() if how == "kill9" else d.stop()  # SIGTERM: on-stop leave, job runs on
        size = log.stat().st_size
        wait_until(lambda: log.stat().st_size > size + 20, 15,
                   what="the job wrote while benchd was down")
        d.start()
        wait_until(lambda: b"line 39 of 40" in out_path.read_bytes(), 20,
                   what="tail caught up after the restart")
        gate.touch()
        code, _, err = finish(tail, 30)
    assert code == 0, err
    assert b"lost benchd; reconnecting" in err and b"reconnected to benchd" in err
    d.wait_job(job_id)
    assert out_path.read_bytes() == log.read_bytes()  # nothing lost, nothing repeated


def test_tail_follow_of_a_quiet_job_and_of_a_frozen_benchd(daemon_factory, gate: Path,
                                                          tmp_path: Path) -> None:
    """--stall-timeout: a job silent for many stall periods is followed to its end byte for
    byte (each silent stream is asked for anew, at the byte reached); a benchd frozen by
    SIGSTOP is not waited on forever: tail -f gives up after --reconnect-timeout, exit 69,
    saying benchd sent no answer. The job is unharmed."""
    d = daemon_factory()
    d.set_spec(lines=3, wait_for_file=str(gate))
    job_id = d.start_job()["job_id"]
    log = d.log_file(job_id)
    out_path = tmp_path / "tail.out"
    with spawned_into(d, out_path, gate, "tail", "-f", "-n", "1000", job_id,
                      "--stall-timeout", "1") as tail:
        wait_until(lambda: b"line 2 of 3" in out_path.read_bytes(), 15, what="tail output")
        # the job stays silent for three stall periods: that silence is the condition under
        # test, so this is a wall-time wait, not a synchronisation
        time.sleep(3.2)
        assert tail.poll() is None
        gate.touch()
        code, _, err = finish(tail, 30)
    assert code == 0, err
    d.wait_job(job_id)
    assert out_path.read_bytes() == log.read_bytes()
    assert b"lost benchd" not in err

    gate.unlink()
    job_id = d.start_job()["job_id"]
    wait_until(lambda: b"line 2 of 3" in d.log_file(job_id).read_bytes(), 15, what="job log")
    out_path.unlink()
    with spawned_into(d, out_path, gate, "tail", "-f", job_id, "--stall-timeout", "1",
                      "--reconnect-timeout", "1") as tail:
        # freeze benchd only once tail is following (its first calls wait 30 s, not 1)
        wait_until(lambda: b"line 2 of 3" in out_path.read_bytes(), 15, what="tail output")
        started = time.monotonic()
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            code, _, err = finish(tail, 30)
            gave_up_after = time.monotonic() - started
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
    assert code == 69, err
    assert b"sent no answer" in err and b"frozen" in err, err
    # the stall clock started at the last byte, before the freeze; then 1 s without an answer
    assert 1 <= gave_up_after < 10, gave_up_after
    r = bc(d, "tail", job_id, "--stall-timeout", "0.5")
    assert r.returncode == 2 and "at least 1 s" in r.stderr
    gate.touch()
    assert d.wait_job(job_id)["status"] == "completed"


@pytest.mark.parametrize("command", [("tail", "-f"), ("run", "--follow")])
def test_sigint_stops_following_not_the_job(daemon_factory, gate: Path, tmp_path: Path,
                                            command: tuple[str, ...]) -> None:
    d = daemon_factory()
    d.set_spec(wait_for_file=str(gate), lines=3)
    if command[0] == "tail":
        d.start_job()
    out_path = tmp_path / "out"
    with spawned_into(d, out_path, gate, *command) as proc:
        wait_until(lambda: b"line 2 of 3" in out_path.read_bytes(), 15, what="log output")
        job_id = d.get("/api/health").json()["active_job"]["job_id"]
        proc.send_signal(signal.SIGINT)
        code, _, err = finish(proc, 10)
        assert code == 130, err
        assert b"keeps running" in err and b"Traceback" not in err
        assert d.job(job_id)["status"] == "running"
    assert d.wait_job(job_id)["status"] == "completed"


def test_piped_follow_is_the_raw_log(daemon_factory) -> None:
    d = daemon_factory()
    d.set_spec(lines=50)
    proc = spawn(d, "run", "--follow", "-e", "gmst_era,equ_ecl")
    code, out, err = finish(proc)
    assert code == 0, err
    job_id = re.search(rb"job ([0-9a-f]{12}) started", err).group(1).decode()
    assert out == d.log_file(job_id).read_bytes()
    assert b"@@benchd-progress" in out and not CONTROL.search(out)
    assert b"completed" in err

    r = bc(d, "tail", job_id, "-n", "2")
    assert r.returncode == 0
    assert r.stdout.splitlines() == d.log_file(job_id).read_text().splitlines()[-2:]
    r = bc(d, "logs", job_id)
    assert r.stdout == d.log_file(job_id).read_text()


def test_logs_into_a_closed_pipe_is_quiet(daemon_factory) -> None:
    d = daemon_factory()
    d.set_spec(lines=30000)
    job_id = bc(d, "run", "--wait").stderr.split()[1]
    assert JOB_ID.match(job_id)
    proc = spawn(d, "logs", job_id)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    code, _, err = finish(proc)
    assert first.startswith(b"fake orchestrator pid")
    assert code == 0 and err == b"", err


def _run_in_pty(argv: list[str], env: dict[str, str], timeout: float = 30) -> tuple[int, bytes]:
    """Run argv with stdout and stderr on a pseudo-terminal; return (exit code, screen bytes)."""
    code, data, _ = in_pty(argv, env, timeout=timeout)
    return code, data


def test_follow_on_a_terminal_shows_the_progress_line(daemon_factory) -> None:
    d = daemon_factory()
    d.set_spec(lines=5, lines_per_s=50)
    code, screen = _run_in_pty([*BENCHCTL, "run", "--follow", "-e", "gmst_era,equ_ecl"],
                               env_for(d, TERM="xterm"))
    assert code == 0, screen
    text = screen.decode()
    assert "1/2 experiments · gmst_era" in text and "2/2 experiments" in text
    assert "@@benchd-progress" not in text  # drawn, not printed
    assert "\r\x1b[K" in text and "line 4 of 5" in text
    assert "\x1b[32mcompleted" in text  # the outcome, coloured on a terminal


def test_tail_lines_on_a_terminal_counts_the_lines_it_shows(daemon_factory) -> None:
    """The log ends with four progress lines (3 experiments done, published): on a terminal
    they are not lines, so -n 3 shows the last three log lines; piped, -n counts every line."""
    d = daemon_factory()
    d.set_spec(lines=5)
    job = bc(d, "run", "-e", "gmst_era,equ_ecl,precession", "--wait", "--json")
    job_id = json.loads(job.stdout)["job_id"]
    for follow in ([], ["-f"]):
        code, screen = _run_in_pty([*BENCHCTL, "tail", job_id, "-n", "3", *follow],
                                   env_for(d, TERM="xterm"))
        text = screen.decode()
        assert code == 0, text
        assert [f"line {i} of 5" in text for i in range(5)] == [False, False, True, True,
                                                                True], (follow, text)
        assert "@@benchd-progress" not in text
    r = bc(d, "tail", job_id, "-n", "3")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3
    assert all(ln.startswith("@@benchd-progress") for ln in r.stdout.splitlines())
    code, screen = _run_in_pty([*BENCHCTL, "tail", job_id, "-n", "0"], env_for(d, TERM="xterm"))
    assert code == 0 and b"line" not in screen, screen


def test_tail_lines_on_a_terminal_are_the_lines_it_draws(daemon_factory) -> None:
    """Lines as the terminal draws them: a bare \\r does not end a line (a progress bar
    redrawn in place is one line) and a line that only looks like progress is printed, so
    it counts."""
    writer = ("import sys\n"
              "sys.stdout.write('one\\ntwo\\nbar 10%\\rbar 50%\\rbar 100%\\n'\n"
              "                 '@@benchd-progress oops\\n'\n"
              "                 '@@benchd-progress {\"phase\":\"start\",\"k\":1,\"total\":1}\\n')\n")
    d = daemon_factory(orchestrator=[sys.executable, "-c", writer])
    job_id = d.start_job()["job_id"]
    assert d.wait_job(job_id)["status"] == "completed"
    code, screen = _run_in_pty([*BENCHCTL, "tail", job_id, "-n", "2"], env_for(d, TERM="xterm"))
    text = screen.decode()
    assert code == 0, text
    assert "two" not in text and "bar 10%" in text and "@@benchd-progress oops" in text, text
    assert '"phase"' not in text


def test_history_colours_only_on_a_terminal(daemon_factory) -> None:
    d = daemon_factory()
    bc(d, "run", "--wait")
    d.set_spec(exit_code=1)
    bc(d, "run", "--wait")
    code, screen = _run_in_pty([*BENCHCTL, "history"], env_for(d))
    assert code == 0 and b"\x1b[32mcompleted" in screen and b"\x1b[31mfailed" in screen
    code, screen = _run_in_pty([*BENCHCTL, "history"], env_for(d, NO_COLOR="1"))
    assert code == 0 and b"\x1b[" not in screen and b"completed" in screen
    r = bc(d, "history")
    assert r.returncode == 0 and "\x1b" not in r.stdout
    rows = r.stdout.splitlines()
    assert rows[0].split()[:2] == ["ID", "STATE"] and len(rows) == 3
    assert rows[1].split()[1] == "failed" and rows[2].split()[1] == "completed"
    r = bc(d, "history", "--status", "failed", "--json")
    jobs = msgspec.json.decode(r.stdout, type=JobList).jobs
    assert [j.status for j in jobs] == [JobState.FAILED]
    r = bc(d, "history", "--limit", "1")
    assert len(r.stdout.splitlines()) == 2


def test_status_json_and_daemon_down(daemon_factory) -> None:
    d = daemon_factory()
    r = bc(d, "status", "--json")
    health = msgspec.json.decode(r.stdout, type=Health)
    assert r.returncode == 0 and health.status == "ok" and health.active_job is None
    assert health.socket == str(d.socket_path)
    r = bc(d, "status")
    assert "no job running" in r.stdout and str(d.root) in r.stdout
    d.stop()
    for args in (("status",), ("history",), ("run",)):
        r = bc(d, *args)
        assert r.returncode == 69, (args, r.stderr)
        assert str(d.socket_path) in r.stderr and "benchd --root DIR" in r.stderr


def test_forbidden_to_cancel_another_users_job(daemon_factory, gate: Path) -> None:
    """Exit 6: the caller is uid 65534 (SO_PEERCRED, set for real with setuid). Python cannot
    be exec'd as that user here (/root is 0700), so the child imports benchctl as root, then
    drops to uid 65534 before main() connects: the same code path as the console script."""
    if os.getuid() != 0:
        pytest.skip("needs root to switch uid")
    d = daemon_factory(extra_args=["--socket-mode", "0666"])
    os.chmod(d.socket_path.parent, 0o755)
    d.set_spec(wait_for_file=str(gate))
    job_id = d.start_job()["job_id"]
    code = ("import sys, os\n"
            "import benchctl.cli, benchctl.commands.cancel, benchctl.client, benchctl.jobref, "
            "benchctl.render, benchctl.exitcodes, benchd.defaults, json, urllib.parse, locale\n"
            "benchctl.cli.build_parser('cancel').format_help()  # argparse's lazy imports\n"
            "os.setgid(65534); os.setuid(65534)\n"
            f"sys.exit(benchctl.cli.main(['cancel', '{job_id}']))\n")
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=30, env=env_for(d), cwd="/")
        assert r.returncode == 6, (r.returncode, r.stderr)
        assert "forbidden" in r.stderr.lower() or job_id in r.stderr or "not" in r.stderr
        assert d.job(job_id)["status"] == "running"
    finally:
        gate.touch()
    d.wait_job(job_id)


# --- results and experiments with the real pipeline ---------------------------------------

def test_real_pipeline_results_and_experiments(daemon_factory) -> None:
    d = daemon_factory(orchestrator=[sys.executable, "-m", "pipeline"])
    r = bc(d, "run", "--wait", "--ci", "--no-perf", "-e", "gmst_era", timeout=240)
    assert r.returncode == 0, r.stderr + d.stderr_text()[-2000:]
    r = bc(d, "results")
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split()[:2] == ["RUN", "STATUS"] and len(rows) == 1
    run_id = rows[0].split()[0]
    assert "gmst_era" in rows[0]
    r = bc(d, "results", "latest")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"run {run_id}") and "erfa" in r.stdout and "gmst_era" in r.stdout
    r = bc(d, "results", run_id, "--json")
    detail = json.loads(r.stdout)
    assert r.returncode == 0 and detail["run_id"] == run_id and "gmst_era" in detail["experiments"]
    r = bc(d, "results", "1999-01-01_00-00-00")
    assert r.returncode == 4, r.stderr
    r = bc(d, "experiments", timeout=200)
    assert r.returncode == 0, r.stderr
    assert "gmst_era:" in r.stdout and "reference: erfa" in r.stdout
    r = bc(d, "experiments", "--json", timeout=200)
    rows = json.loads(r.stdout)
    names = [e["experiment"] for e in rows]
    assert all(set(e) == {"experiment", "title", "reference", "unit", "perf_contract",
                          "adapters"} and set(e["reference"]) == {"name", "model"}
               for e in rows), rows[0]
    assert "gmst_era" in names and "frame_rotation_bpn" in names

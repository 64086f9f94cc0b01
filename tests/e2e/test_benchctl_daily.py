"""What a daily user of benchctl trips over, end to end: the real `benchctl` console script
against a real benchd on a real Unix socket (tests/support/daemon.py), jobs run by the fake
orchestrator or a real interpreter, real signals. Terminal behaviour runs in a real
pseudo-terminal of a known size (os.openpty + TIOCSWINSZ), piped behaviour through pipes."""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.benchctl_run import BENCHCTL, bc, env_for
from tests.support.daemon import Daemon, daemon_factory, wait_until  # noqa: F401 (fixture)
from tests.support.terminal import in_pty

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_in_pty(argv: list[str], env: dict[str, str], columns: int = 80, rows: int = 24,
               timeout: float = 30) -> tuple[int, str]:
    """argv with stdout and stderr on a pseudo-terminal of columns x rows; (exit code, the
    screen's text with escape sequences removed and \\r\\n as \\n)."""
    code, data, _ = in_pty(argv, env, columns=columns, rows=rows, timeout=timeout)
    text = ANSI.sub("", data.decode("utf-8", "replace")).replace("\r\n", "\n")
    return code, text


def _held(d: Daemon, gate: Path, **spec: object) -> str:
    d.set_spec(wait_for_file=str(gate), **spec)
    job_id = bc(d, "run").stdout.strip()
    d.wait_job(job_id, ("running",))
    wait_until(lambda: b"fake orchestrator pid" in d.log_file(job_id).read_bytes(), 15,
               what="orchestrator running")
    return job_id


# --- 3. messages say who and what, once ----------------------------------------------------

def test_cancel_reason_names_the_user_and_what_stopped_the_job(daemon_factory,
                                                               tmp_path: Path) -> None:
    d = daemon_factory()
    me = pwd.getpwuid(os.getuid()).pw_name
    job_id = _held(d, tmp_path / "gate")
    r = bc(d, "cancel", job_id)
    assert r.returncode == 3, r.stderr   # cancel exits with the outcome: cancelled
    assert re.fullmatch(rf"job {job_id} cancelled by {re.escape(me)} after \S+ \(stopped by "
                        rf"SIGTERM after \d+\.\d s\)\n", r.stdout), r.stdout
    rec = d.job(job_id)
    assert re.fullmatch(rf"cancelled by {re.escape(me)}: stopped by SIGTERM after \d+\.\d s",
                        rec["reason"]), rec["reason"]
    assert rec["cancel_requested_by"] == os.getuid() and rec["signal"] == "SIGTERM"
    r = bc(d, "status", job_id)
    assert f"reason:       cancelled by {me}: stopped by SIGTERM" in r.stdout, r.stdout
    assert "uid 0:" not in r.stdout and "code 143" not in r.stdout

    job_id = _held(d, tmp_path / "gate2", ignore_sigterm=True)
    r = bc(d, "cancel", job_id, "--grace", "0.5")
    assert r.returncode == 3, r.stderr
    rec = d.job(job_id)
    assert rec["reason"] == f"cancelled by {me}: killed by SIGKILL after the 0.5 s grace"
    assert rec["signal"] == "SIGKILL" and r.stdout.count("SIGKILL") == 1, r.stdout


def test_a_sigkilled_job_says_so_once_with_the_logs_last_line(daemon_factory) -> None:
    killer = ("import os, signal, sys\n"
              "print('loading the ephemeris', flush=True)\n"
              "print('out of memory in the DE440 loader', file=sys.stderr, flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    d = daemon_factory(orchestrator=[sys.executable, "-c", killer])
    r = bc(d, "run", "--wait")
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("SIGKILL") == 1, r.stderr
    assert "killed by SIGKILL: out of memory in the DE440 loader" in r.stderr, r.stderr
    job = d.get("/api/benchmark/jobs?limit=1").json()["jobs"][0]
    assert job["reason"] == "killed by SIGKILL: out of memory in the DE440 loader"
    assert job["signal"] == "SIGKILL" and job["exit_code"] is None


# --- 4. tail -f ends with the job's outcome --------------------------------------------------

@pytest.mark.parametrize("how", ["cancel", "fail", "complete"])
def test_tail_follow_exits_with_the_jobs_outcome(daemon_factory, tmp_path: Path,
                                                 how: str) -> None:
    d = daemon_factory()
    gate = tmp_path / "gate"
    job_id = _held(d, gate, exit_code=1 if how == "fail" else 0)
    proc = subprocess.Popen([*BENCHCTL, "tail", "-f", job_id], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env_for(d))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"fake orchestrator pid")  # following
        if how == "cancel":
            assert bc(d, "cancel", job_id).returncode == 3
        else:
            gate.touch()
        out, err = proc.communicate(timeout=30)
    finally:
        gate.touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    expected = {"cancel": 3, "fail": 1, "complete": 0}[how]
    lines = err.decode().splitlines()
    assert proc.returncode == expected, err
    assert len(lines) == 1 and lines[0].startswith(f"job {job_id} "), lines
    word = {"cancel": f"cancelled by {pwd.getpwuid(os.getuid()).pw_name} after ", "fail": "failed after ",
            "complete": "completed after "}[how]
    assert word in lines[0], lines


# --- 5. logs on a terminal hides progress lines; piped it is byte-exact ----------------------

def test_logs_hides_progress_lines_on_a_terminal_only(daemon_factory) -> None:
    d = daemon_factory()
    d.set_spec(lines=3)
    job = json.loads(bc(d, "run", "--wait", "--json", "-e", "gmst_era,equ_ecl").stdout)
    r = subprocess.run([*BENCHCTL, "logs", job["job_id"]], capture_output=True, env=env_for(d),
                       timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout == d.log_file(job["job_id"]).read_bytes()
    assert b"@@benchd-progress" in r.stdout
    code, screen = run_in_pty([*BENCHCTL, "logs", job["job_id"]], env_for(d, TERM="xterm"))
    assert code == 0, screen
    assert "@@benchd-progress" not in screen and "line 2 of 3" in screen, screen


# --- 10. validation names the flag, reports everything, suggests ----------------------------

def test_run_refusals_name_flags_list_every_problem_and_suggest(daemon_factory) -> None:
    d = daemon_factory()
    r = bc(d, "run", "-e", "gmst", "--n", "0", "--perf-rounds", "0")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("benchctl: --experiments: unknown experiment 'gmst' (did you "
                               "mean gmst_era?)"), r.stderr
    assert "--n: must be between 1 and" in r.stderr
    assert "--perf-rounds: must be between 1 and" in r.stderr and "perf_rounds" not in r.stderr
    r = bc(d, "run", "-e", "all,gmst_era")
    assert r.returncode == 2 and "'all' stands for every experiment" in r.stderr, r.stderr
    r = bc(d, "run", "-e", "all", "-e", "gmst_era")
    assert r.returncode == 2 and "'all' stands for every experiment" in r.stderr, r.stderr
    assert d.get("/api/benchmark/jobs").json()["jobs"] == []   # nothing was started

    # benchd's own check (for other clients) also reports every field, the first one first
    r = d.post_json("/api/benchmark/jobs", {"experiments": ["gmst"], "n": 0, "seed": -1})
    msg = r.json()["error"]["message"]
    assert r.status == 400 and msg.startswith("experiments: unknown experiment 'gmst' (did "
                                              "you mean gmst_era?)"), msg
    assert "; n: must be between" in msg and "; seed: must be between" in msg


def test_benchds_refusal_is_shown_with_the_flag(daemon_factory) -> None:
    """A refusal only benchd makes (here: a limit benchctl does not know, as from a newer
    benchd) comes back naming the CLI flag."""
    from benchctl.commands.run import flag_message
    assert flag_message("perf_rounds: must be between 1 and 1000, got 0; seed: must be x") \
        == "--perf-rounds: must be between 1 and 1000, got 0; --seed: must be x"
    d = daemon_factory()
    r = bc(d, "run", "--resume", "../x")
    assert r.returncode == 2 and r.stderr.startswith("benchctl: --resume: "), r.stderr


# --- 2. tables fit the terminal; pipes get everything ---------------------------------------

def _visible(screen: str) -> list[str]:
    return [ln for ln in screen.split("\n") if ln.strip()]


def test_history_and_status_fit_the_terminal_and_pipes_stay_complete(daemon_factory) -> None:
    d = daemon_factory()
    four = "gmst_era,equ_ecl,precession,kepler_solver"
    job = json.loads(bc(d, "run", "--wait", "--json", "-e", four).stdout)
    from pipeline.catalog import EXPERIMENTS
    bc(d, "run", "--wait", "-e", ",".join(EXPERIMENTS))
    for columns in (60, 80):
        code, screen = run_in_pty([*BENCHCTL, "history"], env_for(d, TERM="xterm"), columns)
        lines = _visible(screen)
        assert code == 0 and len(lines) == 3, screen
        assert all(len(ln) <= columns for ln in lines), (columns, screen)
        assert lines[1].split()[0] != job["job_id"] and job["job_id"] in lines[2]   # ids whole
        assert re.search(r"(\bgmst_era(,\S+)*|…) \+\d\b", lines[2]), screen  # 'gmst_era +3'
        assert re.search(r"\ball\b", lines[1]), screen         # every experiment, named so
    assert "gmst_era +3" in lines[2], screen   # 80 columns: the first name whole
    r = bc(d, "history")
    assert four in r.stdout and ",".join(EXPERIMENTS) in r.stdout and "…" not in r.stdout
    assert max(len(ln) for ln in r.stdout.splitlines()) > 80   # not cut when piped
    code, screen = run_in_pty([*BENCHCTL, "status", job["job_id"]], env_for(d, TERM="xterm"),
                              40)
    assert code == 0 and all(len(ln) <= 40 for ln in _visible(screen)), screen
    assert "…" in screen    # the long values (experiments, results path) were cut
    r = bc(d, "status", job["job_id"])
    assert re.search(rf"^experiments: +{four}$", r.stdout, re.M) and "…" not in r.stdout


# --- 6. times: local with a zone on a terminal, ISO UTC piped, relative in history ---------

def test_times_are_local_on_a_terminal_and_iso_utc_when_piped(daemon_factory) -> None:
    from datetime import datetime, timedelta
    d = daemon_factory()
    job = json.loads(bc(d, "run", "--wait", "--json").stdout)
    started = datetime.fromisoformat(job["started_at"].replace("Z", "+00:00"))
    tokyo = (started + timedelta(hours=9)).strftime("%Y-%m-%d %H:%M:%S")
    code, screen = run_in_pty([*BENCHCTL, "status", job["job_id"]],
                              env_for(d, TERM="xterm", TZ="Asia/Tokyo"))
    assert code == 0 and f"started:      {tokyo} JST" in screen, screen
    utc = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    r = bc(d, "status", job["job_id"], TZ="Asia/Tokyo")
    assert f"started:      {utc}" in r.stdout, r.stdout     # piped: ISO 8601 UTC, TZ or not
    r = bc(d, "history", TZ="Asia/Tokyo")
    assert r.stdout.splitlines()[1].split()[2] == utc
    code, screen = run_in_pty([*BENCHCTL, "history"], env_for(d, TERM="xterm"))
    assert code == 0 and re.search(r"just now|\d+ s ago", screen), screen
    r = bc(d, "history", "--json")
    assert json.loads(r.stdout)["jobs"][0]["started_at"] == job["started_at"]


def test_follow_progress_line_has_elapsed_and_an_eta_from_comparable_jobs(
        daemon_factory) -> None:
    d = daemon_factory()
    d.set_spec(sleep_s=3)
    for _ in range(2):     # earlier comparable jobs took >= 3 s
        assert bc(d, "run", "--wait", "-e", "gmst_era,equ_ecl", "--n", "50").returncode == 0
    d.set_spec(lines=6, lines_per_s=10)
    code, screen = run_in_pty([*BENCHCTL, "run", "--follow", "-e", "equ_ecl,gmst_era",
                               "--n", "50"], env_for(d, TERM="xterm"), columns=120)
    assert code == 0, screen
    assert re.search(r"experiments · \w+ · \d+s elapsed · ETA \ds", screen), screen
    # a different n has no comparable job: elapsed time, but no ETA rather than a wrong one
    code, screen = run_in_pty([*BENCHCTL, "run", "--follow", "-e", "gmst_era,equ_ecl",
                               "--n", "51"], env_for(d, TERM="xterm"), columns=120)
    assert code == 0 and re.search(r"\d+s elapsed", screen) and "ETA" not in screen, screen
    r = bc(d, "run", "--follow", "-e", "gmst_era,equ_ecl", "--n", "50")
    assert "elapsed" not in r.stdout + r.stderr    # piped: the raw log, nothing drawn


# --- 9. pager, results --experiment, completion, man page ----------------------------------

def _recording_pager(path: Path) -> str:
    """A PAGER that stores what it was given (a real process reading a real pipe)."""
    import shlex
    code = "import shutil, sys; shutil.copyfileobj(sys.stdin.buffer, open(sys.argv[1], 'wb'))"
    return shlex.join([sys.executable, "-c", code, str(path)])


def test_long_output_on_a_terminal_goes_through_the_pager(daemon_factory,
                                                          tmp_path: Path) -> None:
    d = daemon_factory()
    d.set_spec(lines=30)
    job = json.loads(bc(d, "run", "--wait", "--json", "-e", "gmst_era").stdout)["job_id"]
    paged = tmp_path / "paged"
    env = env_for(d, TERM="xterm", PAGER=_recording_pager(paged))
    code, screen = run_in_pty([*BENCHCTL, "logs", job], env, rows=10)
    assert code == 0, screen
    got = paged.read_text()
    assert "line 29 of 30" in got and "@@benchd-progress" not in got
    assert "line 29 of 30" not in screen          # the pager had it, not the terminal
    paged.unlink()
    code, screen = run_in_pty([*BENCHCTL, "history"], env, rows=10)   # fits: no pager
    assert code == 0 and job in screen and not paged.exists()
    code, screen = run_in_pty([*BENCHCTL, "logs", job, "--no-pager"], env, rows=10)
    assert code == 0 and "line 29 of 30" in screen and not paged.exists()
    code, screen = run_in_pty([*BENCHCTL, "--no-pager", "logs", job], env, rows=10)
    assert code == 0 and "line 29 of 30" in screen and not paged.exists()
    code, screen = run_in_pty([*BENCHCTL, "logs", job], {**env, "PAGER": "cat"}, rows=10)
    assert code == 0 and "line 29 of 30" in screen
    r = bc(d, "logs", job, PAGER=_recording_pager(paged))                 # piped: never
    assert "line 29 of 30" in r.stdout and not paged.exists()
    code, screen = run_in_pty([*BENCHCTL, "tail", "-f", job, "-n", "30"], env, rows=10)
    assert code == 0 and "line 29 of 30" in screen and not paged.exists()   # follow: never
    for _ in range(12):
        bc(d, "run", "--wait")
    code, screen = run_in_pty([*BENCHCTL, "history"], env, rows=10)
    assert code == 0 and paged.read_text().count("completed") == 13, screen


def _complete_in_bash(d: Daemon, line: str) -> list[str]:
    """What bash offers for `line` (the cursor at its end), with the generated script and the
    real benchctl (its hidden helper asks the daemon)."""
    script = subprocess.run([*BENCHCTL, "completion", "bash"], capture_output=True, text=True,
                            env=env_for(d), timeout=30, check=True).stdout
    words = line.split(" ")
    prog = (script + "\nCOMP_WORDS=(" + " ".join(f"'{w}'" for w in words) + ")\n"
            f"COMP_CWORD={len(words) - 1}\n_benchctl\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
    env = env_for(d, PATH=f"{Path(BENCHCTL[0]).parent}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run(["bash", "--norc", "-c", prog], capture_output=True, text=True, env=env,
                       timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return [w for w in r.stdout.splitlines() if w]


def test_completion_from_the_parsers_with_live_job_ids_and_experiments(daemon_factory,
                                                                       tmp_path: Path) -> None:
    d = daemon_factory()
    job = d.start_job()["job_id"]
    d.wait_job(job)
    assert _complete_in_bash(d, "benchctl tail ") == [job]
    assert _complete_in_bash(d, f"benchctl cancel {job[:3]}") == [job]
    assert _complete_in_bash(d, "benchctl run -e gm") == ["gmst_era"]
    assert _complete_in_bash(d, "benchctl resul") == ["results"]   # (res: results, resume)
    assert "--experiment" in _complete_in_bash(d, "benchctl results --")
    assert _complete_in_bash(d, "benchctl completion ") == ["bash", "zsh", "fish"]
    assert "--perf-rounds" in _complete_in_bash(d, "benchctl --socket x run --p")
    # the helper is silent and succeeds whatever happens (no daemon here)
    r = subprocess.run([*BENCHCTL, "__complete", "jobs"], capture_output=True, timeout=30,
                       env={**env_for(d), "BENCHD_SOCKET": str(tmp_path / "nothing.sock")})
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
    r = bc(d, "completion", "fish")
    assert r.returncode == 0
    assert ("complete -c benchctl -n '__fish_seen_subcommand_from tail' -a "
            "'(benchctl __complete jobs 2>/dev/null)'") in r.stdout
    assert "complete -c benchctl -n '__fish_use_subcommand' -a results" in r.stdout
    r = bc(d, "completion", "zsh")
    assert r.returncode == 0 and r.stdout.startswith("#compdef benchctl") and "bashcompinit" \
        in r.stdout
    r = bc(d, "completion", "tcsh")
    assert r.returncode == 2 and "tcsh" in r.stderr


@pytest.mark.skipif(not shutil.which("fish"), reason="fish is not installed (apt-get install fish)")
def test_fish_completes_with_the_generated_script(daemon_factory, tmp_path: Path) -> None:
    d = daemon_factory()
    job = d.start_job()["job_id"]
    d.wait_job(job)
    script = tmp_path / "benchctl.fish"
    script.write_text(bc(d, "completion", "fish").stdout)
    env = env_for(d, PATH=f"{Path(BENCHCTL[0]).parent}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C 'benchctl "
                        "tail '; complete -C 'benchctl run -e gm'; complete -C 'benchctl resu'"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    got = [line.split("\t")[0] for line in r.stdout.splitlines()]
    assert job in got and "gmst_era" in got and "results" in got, got


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh is not installed (apt-get install zsh)")
def test_zsh_loads_the_generated_script(daemon_factory, tmp_path: Path) -> None:
    d = daemon_factory()
    script = tmp_path / "_benchctl"
    script.write_text(bc(d, "completion", "zsh").stdout)
    env = env_for(d, PATH=f"{Path(BENCHCTL[0]).parent}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run(["zsh", "-f", "-c", "autoload -U compinit && compinit -u; "
                        f"source {script}; setopt ksharrays; COMP_WORDS=(benchctl completion "
                        "''); COMP_CWORD=2; _benchctl; print -l -- \"${COMPREPLY[@]}\""],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.split() == ["bash", "zsh", "fish"], r.stdout


def test_man_page_is_generated_from_the_parsers(tmp_path: Path) -> None:
    r = subprocess.run([*BENCHCTL, "--man"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith(".TH BENCHCTL 1"), r.stderr
    page = tmp_path / "benchctl.1"
    page.write_text(r.stdout)
    check = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0 and check.stderr == "", check.stderr
    shown = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True,
                           timeout=30, env={**os.environ, "MANWIDTH": "100", "MANPAGER": "cat"})
    text = " ".join(shown.stdout.split())      # justified: spaces vary
    from benchctl import cli
    for name in cli.COMMANDS:
        assert f"benchctl {name} [-h]" in text, name
    assert "--perf-rounds R" in text and "EXIT STATUS" in text and "ISO 8601 UTC" in text


def test_results_shows_one_experiment_and_its_list_fits_the_terminal(daemon_factory) -> None:
    """The real orchestrator (`python -m pipeline`) on the toy registry: a real published run."""
    from tests.pipeline.fixtures import pipeline_run as pr
    env = {"PYTHONPATH": os.pathsep.join([str(Path(pr.__file__).parent), str(pr.ROOT)]),
           "PIPELINE_REGISTRY": "toy_registry", "TOY_SLOW_SECONDS": "0"}
    d = daemon_factory(orchestrator=[sys.executable, "-m", "pipeline"], env=env)
    r = bc(d, "run", "--wait", "--no-perf", "--n", "10", "-e",
           "gmst_era,kepler_solver,equ_ecl", timeout=240)
    # the toy reference fails equ_ecl on purpose: published, with a failed experiment
    assert r.returncode == 1 and "reference failed for equ_ecl" in r.stderr, r.stderr
    full = bc(d, "results", "latest")
    assert "kepler_solver" in full.stdout and "gmst_era" in full.stdout
    r = bc(d, "results", "latest", "--experiment", "kepler_solver")
    assert r.returncode == 0, r.stderr
    assert "kepler_solver" in r.stdout and "gmst_era" not in r.stdout, r.stdout
    assert len(r.stdout) < len(full.stdout)
    r = bc(d, "results", "latest", "--experiment", "kepler")
    assert r.returncode == 4 and "did you mean kepler_solver?" in r.stderr, r.stderr
    r = bc(d, "results", "--experiment", "gmst_era")
    assert r.returncode == 2 and "give RUN too" in r.stderr
    piped = bc(d, "results")
    assert "gmst_era,equ_ecl,kepler_solver" in piped.stdout, piped.stdout   # catalog order
    code, screen = run_in_pty([*BENCHCTL, "results"], env_for(d, TERM="xterm"), columns=80)
    lines = _visible(screen)
    assert code == 0 and len(lines) == 2 and all(len(ln) <= 80 for ln in lines), screen
    assert re.search(r"\w+ \+\d", lines[1]), screen     # the list shortened: 'gmst_era +3'
    code, screen = run_in_pty([*BENCHCTL, "experiments", "--no-pager"], env_for(d, TERM="xterm"),
                              columns=50)
    assert code == 0 and "gmst_era:" in screen, screen
    assert all(len(ln) <= 50 for ln in _visible(screen)) and "…" in screen, screen
    r = bc(d, "experiments")
    assert "…" not in r.stdout and max(map(len, r.stdout.splitlines())) > 50

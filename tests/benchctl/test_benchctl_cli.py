"""The command line itself (real `benchctl` processes, no daemon needed): help text, usage
errors, README tables in step with the parsers, exit-code mapping covering every daemon error."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import benchctl.cli as cli
from benchctl import exitcodes
from benchd import errors

REPO = Path(__file__).resolve().parents[2]
BENCHCTL = [sys.executable, "-m", "benchctl"]


def bc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BENCHCTL, *args], capture_output=True, text=True, timeout=30,
                          cwd=REPO, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("command", cli.COMMANDS)
def test_every_command_has_help_with_exit_codes(command: str) -> None:
    r = bc(command, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: benchctl {command}")
    assert "exit codes:" in r.stdout and " 69  benchd is unreachable" in r.stdout


def test_top_level_help_lists_commands() -> None:
    r = bc("--help")
    assert r.returncode == 0
    for command in cli.COMMANDS:
        assert f"    {command} " in r.stdout


@pytest.mark.parametrize("args,needle", [
    ((), "COMMAND"), (("frobnicate",), "invalid choice"), (("run", "--n", "many"), "--n"),
    (("history", "--status", "sleeping"), "sleeping"), (("history", "--limit", "0"), "--limit"),
    (("run", "--follow", "--wait"), "not allowed with"), (("tail", "-n", "-1"), "--lines"),
    (("cancel", "--grace", "-3"), "--grace"), (("run", "--follow", "--json"), "--json")])
def test_usage_errors_exit_2_naming_the_value(args: tuple[str, ...], needle: str,
                                              tmp_path: Path) -> None:
    # The socket points nowhere: a usage error must be reported before any connection.
    r = bc(*args, env={"BENCHD_SOCKET": str(tmp_path / "none.sock")})
    assert r.returncode == exitcodes.USAGE, (r.returncode, r.stderr)
    assert needle in r.stderr


def test_unreachable_daemon_exit_69_names_socket(tmp_path: Path) -> None:
    sock = tmp_path / "nobody.sock"
    for args in (("status",), ("history",), ("run",), ("tail", "-f"), ("cancel",)):
        r = bc(*args, env={"BENCHD_SOCKET": str(sock)})
        assert r.returncode == exitcodes.UNAVAILABLE, (args, r.stderr)
        assert str(sock) in r.stderr and "benchd --root DIR" in r.stderr
        assert "Traceback" not in r.stderr


def test_socket_option_beats_env(tmp_path: Path) -> None:
    r = bc("status", "--socket", str(tmp_path / "a.sock"),
           env={"BENCHD_SOCKET": str(tmp_path / "b.sock")})
    assert r.returncode == 69 and "a.sock" in r.stderr


def test_readme_tables_match_the_parsers() -> None:
    readme = (REPO / "README.md").read_text()
    assert "## benchctl command reference" in readme and "## Exit codes" in readme
    assert cli.reference_table() in readme, "README command table is stale: regenerate it"
    assert cli.exit_code_table() in readme, "README exit-code table is stale"


def test_every_daemon_error_code_has_an_exit_code() -> None:
    for code, cls in errors.ERRORS_BY_CODE.items():
        mapped = exitcodes.for_api_error(cls.http_status, code)
        assert mapped in {c for c, _ in exitcodes.EXIT_CODES}, code
    assert exitcodes.for_api_error(409, "busy") == exitcodes.BUSY
    assert exitcodes.for_api_error(409, "not_cancellable") == exitcodes.NOT_CANCELLABLE


def test_exit_codes_are_unique_and_states_map() -> None:
    codes = [c for c, _ in exitcodes.EXIT_CODES]
    assert len(codes) == len(set(codes))
    assert [exitcodes.for_state(s) for s in ("completed", "failed", "cancelled", "unknown")] \
        == [0, 1, 3, 7]
    assert exitcodes.for_state("running") == exitcodes.INTERNAL


def test_lean_imports() -> None:
    """status/history must not pull in aiohttp, msgspec, numpy, click or the pipeline; nor
    scipy and matplotlib, which only compare, trend and --html import, when they run."""
    code = ("import sys; import benchctl.cli as c; c.build_parser(); "
            "import benchctl.client, benchctl.render, benchctl.jobref, benchd.defaults; "
            "bad = [m for m in ('aiohttp', 'msgspec', 'numpy', 'click', 'http.client', "
            "'pipeline.progress', 'asyncio', 'scipy', 'matplotlib', 'pipeline.compare', "
            "'pipeline.report', 'pipeline.trend') if m in sys.modules]; print(bad)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       timeout=30)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_cancel_failed_and_internal_errors_through_the_binary(tmp_path: Path) -> None:
    """Exit 9 needs a job that survives SIGKILL and exit 70 a daemon that talks nonsense;
    neither can be provoked in a real benchd here, so a scripted responder on a real socket
    plays benchd for these two answers."""
    import shutil
    import socket as socketmod
    import tempfile

    from tests.benchctl.benchctl_rawserver import RawServer, respond

    d = Path(tempfile.mkdtemp(prefix="bctl-", dir="/tmp"))
    try:
        sock = d / "s.sock"
        failed = (b'{"error": {"code": "cancel_failed", "message": "job 0123456789ab still '
                  b'alive after SIGKILL"}}')

        def garbage(head: bytes, conn: socketmod.socket) -> None:
            conn.sendall(b"SPDY/9 what\r\n\r\n")

        record = b'{"job_id": "0123456789ab", "status": "running"}'
        with RawServer(sock, [respond(200, record), respond(500, failed), garbage]) as srv:
            r = bc("cancel", "0123456789ab", "--socket", str(sock))
            assert r.returncode == exitcodes.CANCEL_FAILED, r.stderr
            assert "still alive" in r.stderr
            assert srv.requests[1].startswith(
                b"POST /api/benchmark/jobs/0123456789ab/cancel HTTP/1.1")
            r = bc("status", "--socket", str(sock))
            assert r.returncode == exitcodes.INTERNAL and "malformed" in r.stderr
            assert "Traceback" not in r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_global_option_spellings_reach_the_command(tmp_path: Path) -> None:
    """Only the named command's module is imported; option spellings must not confuse that."""
    sock = str(tmp_path / "x.sock")
    for args in (("--socket", sock, "status"), (f"--socket={sock}", "history"),
                 ("--sock", sock, "status"), ("status", "--socket", sock)):
        r = bc(*args)
        assert r.returncode == exitcodes.UNAVAILABLE and sock in r.stderr, (args, r.stderr)

"""The `benchd` command line: bad options are usage errors (2) naming the option; problems
found while starting are exit 1 with the reason; nothing is left behind."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import BENCHD, REPO


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BENCHD, *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("args,fragment", [
    (["--socket-mode", "rw-rw----"], "--socket-mode"),
    (["--socket-mode", "01777"], "--socket-mode"),
    (["--orchestrator", "python -m pipeline"], "--orchestrator"),
    (["--orchestrator", "[]"], "--orchestrator"),
    (["--on-stop", "kill"], "--on-stop"),
    (["--grace", "-1"], "--grace"),
    (["--root", "/nonexistent/lab"], "--root"),
])
def test_bad_options_are_usage_errors_naming_the_option(tmp_path: Path, args, fragment) -> None:
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert fragment in r.stderr
    assert not (tmp_path / "run").exists()  # nothing created


def test_unknown_admin_group_is_a_startup_error(tmp_path: Path) -> None:
    r = run("--root", str(tmp_path), "--socket", str(tmp_path / "s.sock"),
            "--admin-group", "no-such-group-xyz", cwd=tmp_path)
    assert r.returncode == 1
    assert "--admin-group: no group named 'no-such-group-xyz'" in r.stderr
    assert not (tmp_path / "s.sock").exists()


def test_help_documents_exit_statuses_and_hides_the_test_hook(tmp_path: Path) -> None:
    r = run("--help", cwd=tmp_path)
    assert r.returncode == 0
    assert "0 clean stop, 1 could not start or crashed, 2 usage error" in " ".join(r.stdout.split())
    assert "--on-stop" in r.stdout and "--orchestrator" not in r.stdout

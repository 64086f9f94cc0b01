"""One real benchd running the real pipeline, shared by the browser tests of a module, with
two real users reaching it as the issue describes: root (the test process) through its own
`benchctl web`, and bob (made with useradd) through his own `benchctl web`, started as bob.

benchd runs with the users' group as its gid (as the service does), so bob may connect."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile.conftest import SystemUsers
from tests.support.daemon import REPO, Daemon

URL_RE = re.compile(r"http://127\.0\.0\.1:(\d+)/\?token=(\S+)")
REAL_PIPELINE = [sys.executable, "-m", "pipeline"]

# bob's forwarder: imports as root (the venv is under /root, 0700), then drops to bob
_AS_USER = """
import sys, os, asyncio, argparse, secrets, hmac, json, urllib.parse, socket, encodings.idna
sys.path.insert(0, {repo!r})
import benchctl.cli, benchctl.client, benchctl.discovery, benchctl.exitcodes
import benchctl.commands.web, benchctl.webforward
os.setgroups({groups!r}); os.setgid({gid}); os.setuid({uid})
assert os.getuid() == {uid}
sys.exit(benchctl.cli.main(["--socket", {sock!r}, "web"]))
"""


@dataclass
class WebForward:
    """A running `benchctl web`: its process and the URL it printed."""
    proc: subprocess.Popen[str]
    url: str
    port: int
    token: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_web(argv: list[str], env: dict[str, str]) -> WebForward:
    """Start `benchctl web` and read the URL it prints (bounded: it prints at once)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd="/")
    assert proc.stdout is not None
    for _ in range(5):
        line = proc.stdout.readline()     # ends when it prints or exits (pipe closes)
        m = URL_RE.search(line)
        if m:
            return WebForward(proc, m.group(0), int(m.group(1)), m.group(2))
        if not line:
            break
    proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    raise AssertionError(f"benchctl web printed no URL: {err}")


@dataclass
class WebLab:
    daemon: Daemon
    mine: WebForward        # root's `benchctl web`
    bob: WebForward         # bob's own `benchctl web`, running as bob
    bob_name: str
    gid: int                # the daemon's group (its socket's): a restarted benchd needs it


@pytest.fixture(scope="module")
def web_lab() -> Iterator[WebLab]:
    if os.geteuid() != 0:
        pytest.skip("needs root: a second real user (useradd) and a daemon group")
    users = SystemUsers()
    sock_dir = Path(tempfile.mkdtemp(prefix="bw-", dir="/tmp"))
    root_dir = Path(tempfile.mkdtemp(prefix="benchd-web-"))
    d = None
    forwards: list[WebForward] = []
    try:
        group, gid = users.group("webusers")
        bob_name, bob_uid, bob_gid = users.user("bob", (group,))
        os.chmod(sock_dir, 0o755)
        d = Daemon(root_dir / "root", grace=5.0, orchestrator=REAL_PIPELINE,
                   socket_path=sock_dir / "sock" / "benchd.sock")
        d.start(preexec_fn=lambda: os.setgid(gid))
        env = d.process_env()
        mine = start_web([sys.executable, "-m", "benchctl", "--socket", str(d.socket_path),
                          "web"], env)
        forwards.append(mine)
        code = _AS_USER.format(repo=str(REPO), groups=sorted({bob_gid, gid}), gid=bob_gid,
                               uid=bob_uid, sock=str(d.socket_path))
        bob = start_web([sys.executable, "-c", textwrap.dedent(code)], env)
        forwards.append(bob)
        yield WebLab(d, mine, bob, bob_name, gid)
    finally:
        for f in forwards:
            f.stop()
        if d is not None:
            d.close()
        users.cleanup()
        shutil.rmtree(sock_dir, ignore_errors=True)
        shutil.rmtree(root_dir, ignore_errors=True)

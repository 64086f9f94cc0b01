"""benchd.procs, the supervisor's process toolbox, on real processes."""
from __future__ import annotations

import fcntl
import os
import secrets
import signal
import subprocess
import sys
import textwrap

from benchd import procs
from tests.support import wait_until

TREE = textwrap.dedent("""
    import os, sys, time
    if os.fork() == 0:          # child
        if os.fork() == 0:      # grandchild
            time.sleep(60)
            os._exit(0)
        time.sleep(60)
        os._exit(0)
    print("ok", flush=True)
    time.sleep(60)
""")


def test_start_ticks_and_identity():
    me = os.getpid()
    ticks = procs.start_ticks(me)
    assert isinstance(ticks, int) and ticks > 0
    assert procs.is_alive(me, ticks)
    assert not procs.is_alive(me, ticks + 1)  # same pid, other start time: not the same process
    assert procs.start_ticks(2**22 + 12345) is None


def test_zombie_is_not_alive():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_until(lambda: open(f"/proc/{p.pid}/stat").read().split(") ")[1][0] == "Z",
               what="zombie")
    assert not procs.is_alive(p.pid, None)
    p.wait()


def test_lock_is_held(tmp_path):
    path = tmp_path / "x.lock"
    assert not procs.lock_is_held(path)  # missing file
    path.touch()
    assert not procs.lock_is_held(path)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(path)!r}, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert procs.lock_is_held(path)
        assert procs.lock_is_held(path)  # probing does not steal or break it
    finally:
        holder.kill()
        holder.wait()
    assert not procs.lock_is_held(path)  # released by the kernel when the holder died
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # and really free
    os.close(fd)


def test_descendants_and_marker_find_the_whole_tree():
    marker = secrets.token_hex(6)   # not a fixed one: other test processes scan and kill too
    p = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, **{procs.JOB_ENV: marker}))
    try:
        assert p.stdout.readline() == "ok\n"
        kids = wait_until(lambda: (d := procs.descendants(p.pid)) and len(d) == 2 and d,
                          what="child and grandchild")
        marked = wait_until(lambda: (m := procs.pids_with_marker(marker)) and len(m) == 3 and m,
                            what="three marked processes")
        assert sorted(marked) == sorted([p.pid, *kids])
        assert sorted(procs.pids_with_marker(marker, exclude=frozenset({p.pid}))) == \
            sorted(kids)
        assert procs.kill_pids([*kids, p.pid], signal.SIGKILL) == 3
    finally:
        procs.kill_pids(procs.pids_with_marker(marker), signal.SIGKILL)
        p.kill()
        p.wait()
    wait_until(lambda: not procs.pids_with_marker(marker), what="all gone")
    assert procs.kill_pids([2**22 + 12345], signal.SIGKILL) == 0
    assert procs.kill_group(2**22 + 12345, signal.SIGKILL) is False


def test_describe_wait_status():
    for code in (0, 3):
        p = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
        _, status = os.waitpid(p.pid, 0)
        p.returncode = 0
        assert procs.describe_wait_status(status) == \
            (code, None, None if code == 0 else f"exited with code {code}")
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    p.send_signal(signal.SIGTERM)
    _, status = os.waitpid(p.pid, 0)
    p.returncode = 0
    assert procs.describe_wait_status(status) == (None, "SIGTERM", "killed by SIGTERM")


def test_lock_holders_name_the_real_holder_and_only_our_user_counts():
    """/proc/locks names the process holding a flock (pid, user, command), whatever pid the
    file says; a flock held by another user's process is held, but not by us."""
    import pwd
    import shutil
    import tempfile
    from pathlib import Path

    from pipeline.lockprobe import lock_holders, lock_is_held, lock_is_held_by_us
    top = Path(tempfile.mkdtemp(prefix="bd-locks-", dir="/tmp"))   # reachable by nobody
    os.chmod(top, 0o755)
    path = top / "x.lock"
    path.write_text("999999\n")
    os.chmod(path, 0o644)
    nobody = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
    drop = (f"os.setgroups([]); os.setgid({nobody.pw_gid}); os.setuid({nobody.pw_uid})\n"
            if nobody else "")
    code = ("import fcntl, os, sys\n" + drop +
            f"fd = os.open({str(path)!r}, os.O_RDONLY)\n"
            "fcntl.flock(fd, fcntl.LOCK_SH)\nprint('held', flush=True)\nsys.stdin.read()\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held", p.wait(timeout=10)
        [h] = lock_holders(path)
        assert h.pid == p.pid and "fcntl" in h.command
        assert h.user == (nobody.pw_name if nobody else pwd.getpwuid(os.getuid()).pw_name)
        assert lock_is_held(path)
        assert lock_is_held_by_us(path) is (nobody is None)
        p.stdin.close()
        assert p.wait(timeout=10) == 0
        assert lock_holders(path) == [] and not lock_is_held(path)
        fd = os.open(path, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert lock_is_held_by_us(path)     # ours
        os.close(fd)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        shutil.rmtree(top, ignore_errors=True)

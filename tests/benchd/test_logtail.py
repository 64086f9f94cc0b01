"""Log following and tail offsets on real files written by a real other process."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from benchd.logtail import LogTailer, follow, tail_offset


@pytest.mark.parametrize("block", [1, 3, 7, 64 * 1024])
def test_tail_offset(tmp_path, block):
    p = tmp_path / "log"
    data = b"a\nbb\n\nccc\nd"
    p.write_bytes(data)
    # lines: "a", "bb", "", "ccc", "d" (unterminated)
    expect = {0: len(data), 1: data.index(b"d"), 2: data.index(b"ccc"), 3: data.index(b"\nccc") ,
              4: data.index(b"bb"), 5: 0, 99: 0}
    for lines, off in expect.items():
        assert tail_offset(p, lines, block=block) == off, lines
    p.write_bytes(b"x\ny\n")
    assert tail_offset(p, 1, block=block) == 2
    assert tail_offset(p, 2, block=block) == 0
    p.write_bytes(b"")
    assert tail_offset(p, 3, block=block) == 0
    assert tail_offset(tmp_path / "missing", 3) == 0


async def test_follow_without_tailer_reads_now_including_partial(tmp_path):
    p = tmp_path / "log"
    p.write_bytes(b"one\ntwo\npart")
    got = b"".join([c async for c in follow(p, 4, None)])
    assert got == b"two\npart"
    assert [c async for c in follow(tmp_path / "missing", 0, None)] == []


WRITER = r"""
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
for i in range(int(sys.argv[2])):
    line = b"line %06d " % i + b"x" * (i % 50) + b"\n"
    os.write(fd, line[:5]); os.write(fd, line[5:])   # lines arrive in pieces
    if i % 100 == 0:
        time.sleep(0.002)
os.write(fd, b"tail without newline")
"""


async def test_follow_live_file_every_byte_exactly_once_from_any_offset(tmp_path):
    p = tmp_path / "log"
    p.write_bytes(b"before\n")
    tailer = LogTailer(p, poll_s=0.002)
    offsets = [0, 3, 7]  # start of file, mid-line, line boundary
    results: dict[int, list[bytes]] = {o: [] for o in offsets}

    async def reader(off):
        async for chunk in follow(p, off, tailer):
            results[off].append(chunk)
    tasks = [asyncio.create_task(reader(o)) for o in offsets]
    w = subprocess.Popen([sys.executable, "-c", WRITER, str(p), "2000"])
    try:
        assert await asyncio.to_thread(w.wait, 30) == 0
    finally:
        w.kill()
    await tailer.close()  # the writer is gone: followers drain to EOF and end
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    whole = p.read_bytes()
    assert whole.endswith(b"tail without newline")
    for off in offsets:
        assert b"".join(results[off]) == whole[off:]
        # while live, every chunk but the last ended on a line boundary
        assert all(c.endswith(b"\n") for c in results[off][:-1])


async def test_follow_waits_for_growth_then_ends_on_close(tmp_path):
    p = tmp_path / "log"
    p.write_bytes(b"")
    tailer = LogTailer(p)
    got: list[bytes] = []

    async def reader():
        async for chunk in follow(p, 0, tailer):
            got.append(chunk)
    task = asyncio.create_task(reader())
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"hel")
        await asyncio.sleep(0.05)
        assert got == []  # a partial line is held back while the writer lives
        os.write(fd, b"lo\nwor")
        for _ in range(200):
            if got:
                break
            await asyncio.sleep(0.005)
        assert got == [b"hello\n"]
        await tailer.close()
        await asyncio.wait_for(task, 5)
        assert got == [b"hello\n", b"wor"]
    finally:
        os.close(fd)


async def test_growth_noticed_by_a_new_waiter_wakes_those_already_waiting(tmp_path):
    """The CI hang of stop 8: follower A waits at its offset; the file grows; follower B's
    wait_beyond notices the growth first. A must be woken then, not at the next growth
    (a job that then goes quiet would leave A waiting forever)."""
    p = tmp_path / "log"
    p.write_bytes(b"one\n")
    tailer = LogTailer(p, poll_s=3600)  # the poller never gets a second look in this test
    a = asyncio.ensure_future(tailer.wait_beyond(4))
    await asyncio.sleep(0)  # A is parked on the condition
    assert not a.done()
    with open(p, "ab") as f:
        f.write(b"two\n")
    await asyncio.wait_for(tailer.wait_beyond(4), 5)  # B sees the growth at once
    await asyncio.wait_for(a, 5)
    await tailer.close()

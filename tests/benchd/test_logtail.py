"""Log following and tail offsets on real files written by a real other process."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchd.logtail import FileScans, LogTailer, follow, tail_offset
from tests.support import async_wait_until


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


def _reference_tail(data: bytes, lines: int) -> int:
    """Where the last `lines` lines start, the obvious way (a final newline ends the last
    line; a final line without one is a line too)."""
    if lines <= 0:
        return len(data)
    body = data[:-1] if data.endswith(b"\n") else data
    starts = [0] + [i + 1 for i, c in enumerate(body) if c == 0x0A]
    return 0 if lines >= len(starts) else starts[-lines]


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\r", b"\r\n", b"\n\n"]),
                     max_size=60).map(b"".join),
       lines=st.integers(0, 40), block=st.integers(1, 9), limit=st.integers(1, 200))
def test_tail_offset_matches_counting_lines_within_the_look_back_limit(
        tmp_path_factory, data, lines, block, limit):
    """Block by block counting gives the offset of the plain line count (\\r is not a line
    end; an unterminated last line counts); None when those lines begin further back than
    the last `limit` bytes (JobManager then serves the whole log)."""
    p = tmp_path_factory.mktemp("tail") / "log"
    p.write_bytes(data)
    want = _reference_tail(data, lines)
    end = len(data) - data.endswith(b"\n")
    floor = max(0, end - limit)  # tail_offset reads nothing before this byte
    if floor > 0 and not (want > 0 and want - 1 >= floor):  # their start is not in sight
        want = None
    assert tail_offset(p, lines, block=block, limit=limit) == want
    assert tail_offset(p, lines, block=block) == _reference_tail(data, lines)


def test_tail_offset_on_millions_of_short_lines(tmp_path):
    p = tmp_path / "log"
    n = 2_000_000
    data = b"".join(b"%d\n" % i for i in range(n)) + b"progress 99%\rprogress 100%"
    p.write_bytes(data)
    for lines in (1, 2, 1000, 123_457, n, n + 1):
        off = tail_offset(p, lines)
        assert off == _reference_tail(data, lines), lines
        assert data[off:].count(b"\n") == lines - 1  # the last line has no newline
    assert tail_offset(p, n + 2) == 0 and tail_offset(p, 10**9) == 0
    assert data[tail_offset(p, 1):] == b"progress 99%\rprogress 100%"
    # look back at most 1 MB: lines beyond it are not looked for; within it, exact
    assert tail_offset(p, 10**9, limit=1_000_000) is None
    assert tail_offset(p, 1000, limit=1_000_000) == _reference_tail(data, 1000)


async def test_file_scans_run_in_threads_at_most_slots_at_once():
    """Six scans through two slots: each in a worker thread, never more than two at once."""
    scans = FileScans(2)
    lock = threading.Lock()
    running: list[int] = []
    peak = [0]
    go = threading.Event()
    loop_thread = threading.get_ident()

    def scan(i: int) -> int:
        assert threading.get_ident() != loop_thread
        with lock:
            running.append(i)
            peak[0] = max(peak[0], len(running))
        go.wait(30)
        with lock:
            running.remove(i)
        return i * 10

    tasks = [asyncio.create_task(scans.run(scan, i)) for i in range(6)]
    await async_wait_until(lambda: len(running) == 2, 10, 0.001, "two scans to start")
    go.set()
    assert await asyncio.wait_for(asyncio.gather(*tasks), 30) == [0, 10, 20, 30, 40, 50]
    assert peak[0] == 2


async def test_file_scans_keep_a_slot_until_the_thread_is_done_even_if_cancelled():
    """A client that goes away mid-scan does not free the slot while its thread still
    reads: otherwise clients that connect, ask and leave would run unbounded threads."""
    scans = FileScans(1)
    go = threading.Event()
    caller = asyncio.create_task(scans.run(go.wait, 30))
    await async_wait_until(lambda: scans._slots.locked(), 10, 0.001, "the scan to start")
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert scans._slots.locked()  # the thread is still in go.wait(): its slot stays taken
    go.set()
    await async_wait_until(lambda: not scans._slots.locked(), 10, 0.001, "the slot back")
    assert await scans.run(len, b"abc") == 3

"""Following a job log that another process appends to.

One LogTailer per live job log notices growth (fstat every POLL_S while anyone waits) and
wakes its waiters; every follower reads the file itself from its own offset, so no log is
held in memory and a slow follower never holds up another. Once the job is final the tailer
is closed: followers drain what is left (final partial line included) and end.
tail_offset finds where the last N lines start, reading a bounded amount; a scan that can
be large runs in a worker thread through FileScans, never on the event loop.
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

POLL_S = 0.005
CHUNK = 64 * 1024  # largest piece read and yielded at once (one turn of the loop)
T = TypeVar("T")


class LogTailer:
    """Growth notifications for one append-only file."""

    def __init__(self, path: Path, poll_s: float = POLL_S) -> None:
        self.path = Path(path)
        self.poll_s = poll_s
        self._size = _size_of(self.path)
        self._closed = False
        self._waiters = 0
        self._cond = asyncio.Condition()
        self._poller: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    async def wait_beyond(self, pos: int) -> None:
        """Return once the file is longer than `pos` or the tailer is closed."""
        self._waiters += 1
        try:
            if self._poller is None or self._poller.done():
                self._poller = asyncio.get_running_loop().create_task(self._poll())
            async with self._cond:
                # Whoever sees growth first wakes everyone: a waiter parked earlier must not
                # wait for the next growth (a job that goes quiet would strand it for good).
                if self._refresh():
                    self._cond.notify_all()
                await self._cond.wait_for(lambda: self._size > pos or self._closed)
        finally:
            self._waiters -= 1

    async def close(self) -> None:
        """The writer is gone: wake everyone so they drain and stop."""
        self._closed = True
        self._refresh()
        async with self._cond:
            self._cond.notify_all()

    def _refresh(self) -> bool:
        size = _size_of(self.path)
        if size != self._size:
            self._size = size
            return True
        return False

    async def _poll(self) -> None:
        while self._waiters and not self._closed:
            await asyncio.sleep(self.poll_s)
            if self._refresh():
                async with self._cond:
                    self._cond.notify_all()


def _size_of(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


async def follow(path: Path, offset: int, tailer: LogTailer | None) -> AsyncIterator[bytes]:
    """Chunks of complete lines from `offset`. With a tailer (a live job) it waits for more
    until the tailer closes, then yields the rest including a final partial line; without
    one it yields what is there now, partial last line included, and ends."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    pos = offset
    try:
        while True:
            done = tailer is None or tailer.closed  # read the flag BEFORE the size
            size = os.fstat(fd).st_size
            if size > pos:
                data = os.pread(fd, min(size - pos, CHUNK), pos)
                if not done:
                    cut = data.rfind(b"\n") + 1
                    if cut == 0 and len(data) < CHUNK:
                        await tailer.wait_beyond(size)  # only a partial line so far
                        continue
                    if cut:
                        data = data[:cut]
                pos += len(data)
                yield data
                if pos < size:
                    # more is waiting, and a client that keeps up never pauses the socket,
                    # so writing does not yield: give the loop (health, other clients) a
                    # turn between chunks. (Caught up, the next wait yields anyway.)
                    await asyncio.sleep(0)
                continue
            if done:
                return
            await tailer.wait_beyond(pos)
    finally:
        os.close(fd)


TAIL_SCAN_MAX = 64 << 20   # a tail looks back at most this far: its read is bounded
TAIL_BLOCK = 64 * 1024


def tail_offset(path: Path, lines: int, block: int = TAIL_BLOCK,
                limit: int = TAIL_SCAN_MAX) -> int | None:
    """Byte offset at which the last `lines` lines of `path` start (a final line without
    newline counts as a line); 0 when the file has fewer lines. Reads backwards in blocks,
    counting a block's newlines at C speed and looking for the one wanted only in the block
    that holds it. It never reads more than the last `limit` bytes: None when the lines
    asked for begin before that. Blocking file I/O: on the event loop only with a small
    `limit`, otherwise through FileScans."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        size = os.fstat(fd).st_size
        if lines <= 0:
            return size
        end = size
        if size and os.pread(fd, 1, size - 1) == b"\n":
            end -= 1  # the newline that terminates the last line is not a separator
        floor = max(0, end - limit)
        seen = 0
        pos = end
        while pos > floor:
            start = max(floor, pos - block)
            buf = os.pread(fd, pos - start, start)
            found = buf.count(b"\n")
            if seen + found >= lines:
                idx = len(buf)
                for _ in range(lines - seen):
                    idx = buf.rfind(b"\n", 0, idx)
                return start + idx + 1
            seen += found
            pos = start
        return 0 if floor == 0 else None
    finally:
        os.close(fd)


class FileScans:
    """Runs blocking file scans (tail offsets) in worker threads, at most `slots` at once, so
    that the event loop never waits on one and any number of clients asking for them holds
    at most `slots` threads (the rest wait their turn, on the loop, at no cost). A slot is
    held until its thread is done, even when the caller is cancelled meanwhile."""

    def __init__(self, slots: int) -> None:
        self._slots = asyncio.Semaphore(slots)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        await self._slots.acquire()
        try:
            work = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        except BaseException:
            self._slots.release()
            raise
        work.add_done_callback(self._done)
        return await asyncio.shield(work)

    def _done(self, work: asyncio.Future[Any]) -> None:
        self._slots.release()
        if not work.cancelled():
            work.exception()  # retrieved: a caller that went away must not leave a warning

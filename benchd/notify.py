"""sd_notify for systemd Type=notify: READY=1 once reconcile is done, STATUS= saying what the
daemon does, STOPPING=1, and WATCHDOG=1 pings.

The pings come from a task on the daemon's event loop (not a thread), so a blocked loop stops
them and systemd's watchdog restarts the daemon. Without NOTIFY_SOCKET every call is a no-op.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping

import sdnotify

from benchd.schema import JobRecord
from benchd.states import ACTIVE

log = logging.getLogger(__name__)

_SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between pings (half of WATCHDOG_USEC), or None when no watchdog is asked for
    this process (WATCHDOG_PID, when set, must be ours)."""
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC=%r", usec)
        return None
    return value / 2e6 if value > 0 else None


def status_text(record: JobRecord | None, *, reattached: bool = False) -> str:
    """One line for `systemctl status`: idle, or the active job with its progress."""
    if record is None or record.status not in ACTIVE:
        if record is None:
            return "idle"
        return f"idle (last job {record.job_id} {record.status.value})"
    verb = "reattached to" if reattached else record.status.value
    if record.status in ACTIVE and record.cancel_requested_by is not None:
        verb = "cancelling"
    parts = [verb, record.job_id]
    p = record.progress
    if p is not None and p.total:
        parts.append(f"{p.k}/{p.total}")
        if p.experiment:
            parts.append(p.experiment)
        if p.adapter:
            parts.append(p.adapter)
    return " ".join(parts)


class Notifier:
    """The daemon's one channel to systemd. Reads the systemd variables once and removes them
    from os.environ so job processes do not inherit (and misuse) them."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self.watchdog_s = watchdog_interval(env) if self.enabled else None
        self._notifier = sdnotify.SystemdNotifier() if self.enabled else None
        self._task: asyncio.Task[None] | None = None
        self.last_status: str | None = None
        if env is os.environ:
            for name in _SYSTEMD_ENV:
                os.environ.pop(name, None)

    def send(self, *fields: str) -> None:
        if self._notifier is not None:
            self._notifier.notify("\n".join(fields))

    def ready(self, status: str) -> None:
        self.last_status = status
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        if text != self.last_status:
            self.last_status = text
            self.send(f"STATUS={text}")

    def stopping(self, status: str = "stopping", *, needs_s: float | None = None) -> None:
        """STOPPING=1; with `needs_s`, also EXTEND_TIMEOUT_USEC so that systemd's stop timeout
        (TimeoutStopSec) cannot SIGKILL us in the middle of a cancel's grace period."""
        self.last_status = status
        fields = ["STOPPING=1", f"STATUS={status}"]
        if needs_s is not None:
            fields.append(f"EXTEND_TIMEOUT_USEC={int(needs_s * 1_000_000)}")
        self.send(*fields)

    def start_watchdog(self) -> None:
        """Ping every half WATCHDOG_USEC from the running loop."""
        if self.watchdog_s is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pings(self.watchdog_s))

    async def _pings(self, interval: float) -> None:
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def stop_watchdog(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


def on_change_status(notifier: Notifier) -> Callable[[JobRecord], None]:
    """The JobManager on_change hook: keep STATUS= in step with the job."""
    def hook(record: JobRecord) -> None:
        notifier.status(status_text(record))
    return hook


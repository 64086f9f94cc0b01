"""The notification service: queues events from job transitions, delivers them with retries,
and answers what the API asks (list, retry, test).

Retries back off exponentially with jitter (base * 2^(attempt-1), capped, times a random
factor in [0.5, 1]) for up to `give_up_s` (24 h) after the event, then the delivery is
dead-lettered. At most `concurrency` attempts run at once and at most one per target, each
bounded by ATTEMPT_TIMEOUT_S, so a slow or dead receiver holds up neither the API (nothing
here runs on a request's path but a file write) nor other targets.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import msgspec

from benchd.errors import Forbidden, InsufficientStorage, InvalidRequest, DeliveryNotFound
from benchd.layout import utc_from_timestamp
from benchd.schema import Delivery, DeliveryInfo, JobRecord, NotifyTarget, NotifyTestResult
from benchd.notifications import events, senders
from benchd.notifications.config import NotifyConfig
from benchd.notifications.outbox import Outbox
from benchd.notifications.targets import (EVENT_FOR_STATE, REGRESSION_EVENT, TEST_EVENT,
                                          check_target, check_targets, parse_events, shown)
from benchd.states import FINAL
from pipeline.schema import VERDICT_REGRESSION

log = logging.getLogger(__name__)

RETRY_BASE_S = 5.0
RETRY_CAP_S = 3600.0
GIVE_UP_S = 24 * 3600.0
CONCURRENCY = 8
LIST_SENT_MAX = 500          # a listing shows at most this many delivered events


class Notifications:
    def __init__(self, root: Path, config: NotifyConfig, *, retry_base_s: float = RETRY_BASE_S,
                 give_up_s: float = GIVE_UP_S, concurrency: int = CONCURRENCY,
                 attempt_timeout_s: float = senders.ATTEMPT_TIMEOUT_S) -> None:
        self.root = Path(root)
        self.config = config
        self.outbox = Outbox(self.root / "logs")
        self.retry_base_s = retry_base_s
        self.give_up_s = give_up_s
        self.attempt_timeout_s = attempt_timeout_s
        self._sem = asyncio.Semaphore(concurrency)
        self._pending: dict[str, Delivery] = {}
        self._inflight: set[str] = set()
        self._busy_targets: set[str] = set()
        self._job_targets: dict[str, list[NotifyTarget]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._attempts: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._counts: dict[str, dict[str, int]] = {}   # job id -> state -> deliveries

    # wiring --------------------------------------------------------------------------------
    def check(self, targets: list[NotifyTarget] | None, field: str = "notify"
              ) -> list[NotifyTarget]:
        return check_targets(targets, self.config.policy, field)

    def register_job(self, job_id: str, targets: list[NotifyTarget]) -> None:
        """Keep a new job's targets (with their secrets) before its first record is written."""
        if not targets:
            return
        try:
            self.outbox.save_targets(job_id, targets)
        except OSError as e:
            raise InsufficientStorage(f"cannot keep the job's notification targets: "
                                      f"{e.strerror}") from None
        self._job_targets[job_id] = list(targets)

    def add_target(self, rec: JobRecord, uid: int, target: NotifyTarget) -> NotifyTarget:
        """Another target for an existing job: only its owner may add one."""
        if uid != rec.requester_uid:
            raise Forbidden(f"job {rec.job_id} belongs to {rec.requester_name}; only they may "
                            f"add notification targets to it")
        target = check_target(target, "target", self.config.policy)
        targets = [*self._targets_of(rec.job_id), target]
        try:
            self.outbox.save_targets(rec.job_id, targets)
        except OSError as e:
            raise InsufficientStorage(f"cannot keep the target: {e.strerror}") from None
        self._job_targets[rec.job_id] = targets
        return target

    def on_transition(self, rec: JobRecord) -> None:
        """JobManager's hook, called before the record in state `rec.status` is written:
        queue the event for every target that wants it (a no-op for ids queued before)."""
        event = EVENT_FOR_STATE.get(rec.status)
        if event is None:
            return
        regression = events.regression_of(rec, self.root) if rec.status in FINAL else None
        happened = [event]
        if regression is not None and regression.get("verdict") == VERDICT_REGRESSION:
            happened.append(REGRESSION_EVENT)
        wanted = [(t, "job") for t in self._targets_of(rec.job_id)] + \
                 [(t, "server") for t in self.config.targets]
        for (target, source), ev in ((w, e) for w in wanted for e in happened):
            if ev not in parse_events(target.on, "on"):
                continue
            d = events.build(rec, ev, target, source, self.root,
                             self.root / "logs" / f"{rec.job_id}.log", regression=regression)
            if d.id in self._pending:
                continue
            try:
                queued = self.outbox.put(d)
            except OSError as e:  # disk full: still send it; it is lost only if we die too
                log.error("notify: cannot queue %s for %s durably (%s); sending it anyway",
                          ev, shown(target), e.strerror)
                queued = True
            if queued:
                self._pending[d.id] = d
                self._count(d.job_id, None, "pending")
                log.info("notify: queued %s of job %s for %s", ev, rec.job_id, shown(target))
        self._wake.set()

    def _targets_of(self, job_id: str) -> list[NotifyTarget]:
        if job_id not in self._job_targets:
            self._job_targets[job_id] = self.outbox.load_targets(job_id)
        return self._job_targets[job_id]

    # the dispatcher ------------------------------------------------------------------------
    async def start(self) -> None:
        for d in await asyncio.to_thread(self.outbox.load, "pending"):
            self._pending.setdefault(d.id, d)
        for state, ids in (await asyncio.to_thread(self.outbox.ids)).items():
            for delivery_id in ids:
                self._count(job_of(delivery_id), None, state)
        if self._pending:
            log.info("notify: %d undelivered event(s) from before the restart",
                     len(self._pending))
        self._session = aiohttp.ClientSession(trust_env=False,
                                              connector=aiohttp.TCPConnector(limit=32))
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for t in list(self._attempts):
            t.cancel()
        await asyncio.gather(*self._attempts, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            now = time.time()
            wait: float | None = None
            for d in sorted(self._pending.values(), key=lambda d: d.next_attempt_at):
                if d.id in self._inflight or d.target.url in self._busy_targets:
                    continue
                if d.next_attempt_at > now:
                    wait = d.next_attempt_at - now if wait is None else \
                        min(wait, d.next_attempt_at - now)
                    continue
                self._inflight.add(d.id)
                self._busy_targets.add(d.target.url)
                task = asyncio.get_running_loop().create_task(self._attempt(d))
                self._attempts.add(task)
                task.add_done_callback(self._attempts.discard)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                pass

    async def _attempt(self, d: Delivery) -> None:
        try:
            async with self._sem:
                result = await self._send(d)
            now = time.time()
            d = msgspec.structs.replace(d, attempts=d.attempts + 1,
                                        last_error=None if result.ok else result.error)
            if result.ok:
                d = msgspec.structs.replace(d, delivered_at=now)
                self._pending.pop(d.id, None)
                self._record(d, "sent")
                log.info("notify: delivered %s of job %s to %s (attempt %d)", d.type, d.job_id,
                         shown(d.target), d.attempts)
            elif now - d.created_at >= self.give_up_s:
                self._pending.pop(d.id, None)
                self._record(d, "dead")
                log.warning("notify: gave up on %s of job %s for %s after %d attempts: %s",
                            d.type, d.job_id, shown(d.target), d.attempts, result.error)
            else:
                delay = min(RETRY_CAP_S, self.retry_base_s * 2 ** (d.attempts - 1))
                d = msgspec.structs.replace(d, next_attempt_at=now + delay *
                                            random.uniform(0.5, 1.0))
                if d.id in self._pending:
                    self._pending[d.id] = d
                    self._record(d, "pending")
                log.info("notify: %s of job %s to %s failed (attempt %d: %s); next in %.0f s",
                         d.type, d.job_id, shown(d.target), d.attempts, result.error,
                         d.next_attempt_at - now)
        finally:
            self._inflight.discard(d.id)
            self._busy_targets.discard(d.target.url)
            self._wake.set()

    def _count(self, job_id: str, old: str | None, new: str) -> None:
        counts = self._counts.setdefault(job_id, {})
        if old is not None and counts.get(old):
            counts[old] -= 1
        counts[new] = counts.get(new, 0) + 1

    def status_of(self, job_id: str) -> str | None:
        """A job's deliveries in a few words ("2 sent, 1 pending"), None when it has none."""
        counts = self._counts.get(job_id)
        if not counts:
            return None
        text = ", ".join(f"{n} {state}" for state in ("sent", "pending", "dead")
                         if (n := counts.get(state)))
        return text or None

    def _record(self, d: Delivery, state: str) -> None:
        if state != "pending":
            self._count(d.job_id, "pending", state)
        try:
            if state == "pending":
                self.outbox.update(d)
            else:
                self.outbox.move(d, state)
        except OSError as e:
            log.error("notify: cannot record %s as %s: %s", d.id, state, e.strerror)

    async def _send(self, d: Delivery) -> senders.Attempt:
        if d.target.url.lower().startswith("mailto:"):
            if self.config.smtp is None:
                return senders.Attempt(False, error="no SMTP server is configured any more")
            return await asyncio.to_thread(senders.send_mail, self.config.smtp, d)
        try:
            check_target(d.target, "target", self.config.policy)
        except InvalidRequest as e:   # the admin changed the allowed hosts since
            return senders.Attempt(False, error=e.message)
        assert self._session is not None
        return await senders.post_webhook(self._session, d, self.attempt_timeout_s)

    # what the API asks ---------------------------------------------------------------------
    def list(self, visible: Callable[[Delivery], bool], is_admin: bool,
             job_id: str | None = None, state: str | None = None) -> list[DeliveryInfo]:
        """Deliveries the caller may see (newest first); sent ones only the latest few."""
        out: list[DeliveryInfo] = []
        for st in (state,) if state else ("pending", "dead", "sent"):
            items = list(self._pending.values()) if st == "pending" else self.outbox.load(st)
            if st == "sent":
                items = sorted(items, key=lambda d: d.delivered_at or 0)[-LIST_SENT_MAX:]
            for d in items:
                if (job_id is None or d.job_id == job_id) and visible(d):
                    out.append(self._info(d, st, is_admin))
        return sorted(out, key=lambda i: i.created_at, reverse=True)

    def find(self, delivery_id: str) -> tuple[str, Delivery]:
        found = self.outbox.find(delivery_id) if _safe_id(delivery_id) else None
        if found is None:
            raise DeliveryNotFound(f"no delivery {delivery_id!r}")
        return found

    def retry(self, delivery_id: str) -> DeliveryInfo:
        """A dead delivery back in the queue, due now, with a new retry window."""
        state, d = self.find(delivery_id)
        if state != "dead":
            raise InvalidRequest(f"delivery {delivery_id} is {state}; only dead ones are "
                                 f"retried")
        now = time.time()
        d = msgspec.structs.replace(d, created_at=now, next_attempt_at=now)
        try:
            self.outbox.move(d, "pending")
        except OSError as e:
            raise InsufficientStorage(f"cannot queue the delivery: {e.strerror}") from None
        self._pending[d.id] = d
        self._count(d.job_id, "dead", "pending")
        self._wake.set()
        return self._info(d, "pending", True)

    async def test(self, target: NotifyTarget) -> NotifyTestResult:
        """Send one test event to `target` now (not queued, not retried)."""
        target = check_target(target, "target", self.config.policy)
        now = time.time()
        body = msgspec.json.encode({"type": TEST_EVENT, "timestamp": utc_from_timestamp(now),
                                    "data": {"message": "a test event from benchd"}}).decode()
        d = Delivery(id=f"msg_test_{int(now * 1000)}_{random.getrandbits(32):08x}",
                     type=TEST_EVENT, job_id="-", target=target, source="test", body=body,
                     created_at=now, next_attempt_at=now,
                     subject="[benchd] test notification",
                     text="A test notification from benchd: this address is reachable.\n")
        result = await self._send(d)
        return NotifyTestResult(ok=result.ok, target=shown(target), status=result.status,
                                answer=result.answer, error=result.error)

    def _info(self, d: Delivery, state: str, is_admin: bool) -> DeliveryInfo:
        target = shown(d.target) if d.source != "server" or is_admin else "(server-wide target)"
        return DeliveryInfo(
            id=d.id, type=d.type, job_id=d.job_id, target=target, source=d.source,
            status=state, attempts=d.attempts, created_at=utc_from_timestamp(d.created_at),
            next_attempt_at=utc_from_timestamp(d.next_attempt_at) if state == "pending" else None,
            delivered_at=utc_from_timestamp(d.delivered_at) if d.delivered_at else None,
            last_error=d.last_error)


def job_of(delivery_id: str) -> str:
    """The job a delivery id is about (ids are msg_<job>_<event>_<hash>)."""
    return delivery_id.split("_", 2)[1] if delivery_id.count("_") >= 2 else "-"


def _safe_id(delivery_id: str) -> bool:
    return (delivery_id.startswith("msg_") and len(delivery_id) <= 100
            and all(c.isalnum() or c in "_-" for c in delivery_id))

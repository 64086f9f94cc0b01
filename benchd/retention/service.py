"""When retention runs, and what the API asks of it.

Runs hourly, when free space on results/ or logs/ falls under the watermark (`min_free`,
checked every CHECK_S), and before a job would be refused for lack of space (JobManager's
`make_space` hook). Sizing, deleting and archiving run in a worker thread: the event loop
(and so the API and systemd's watchdog) never waits on the disk. One prune at a time.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchd.defaults import MIN_FREE_BYTES
from benchd.errors import InvalidRequest
from benchd.retention.policy import Action, Kept, Policy, RunFacts, plan
from benchd.retention.prune import (Pruner, RetentionEntry, SizeCache, collect, empty_trash)
from benchd.schema import KeptRun, PruneAction, PruneReport
from benchd.states import FINAL

if TYPE_CHECKING:
    from benchd.jobs import JobManager

log = logging.getLogger(__name__)

HOURLY_S = 3600.0
CHECK_S = 60.0


class Retention:
    def __init__(self, root: Path, policy: Policy, manager: JobManager, *,
                 hourly_s: float = HOURLY_S, check_s: float = CHECK_S) -> None:
        self.root = Path(root)
        self.results_dir = self.root / "results"
        self.logs_dir = self.root / "logs"
        self.policy = policy
        self.manager = manager
        self.hourly_s = hourly_s
        self.check_s = check_s
        self.sizes = SizeCache()
        self.pruner = Pruner(self.results_dir, self.logs_dir, self.sizes)
        self.lock = asyncio.Lock()    # one prune, archive or restore at a time
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Finish deletions a crash interrupted, then prune on schedule."""
        n = await asyncio.to_thread(empty_trash, self.results_dir, self.logs_dir)
        if n:
            log.info("retention: emptied %d item(s) a crash left in the trash", n)
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        next_hourly = time.monotonic() + (0 if self._active() else self.hourly_s)
        trigger = "start"
        while True:
            try:
                if time.monotonic() >= next_hourly:
                    next_hourly = time.monotonic() + self.hourly_s
                    await self.prune(trigger)
                    trigger = "hourly"
                elif self._active() and self.need_bytes()[0] > 0:
                    await self.prune("watermark")
            except Exception:
                log.exception("retention: prune failed")
            await asyncio.sleep(self.check_s)

    def _active(self) -> bool:
        p = self.policy
        return p.enabled or p.keep_job_days is not None or p.archive_after is not None

    # space ---------------------------------------------------------------------------------
    def need_bytes(self) -> tuple[int, int]:
        """Bytes to free on results/ and logs/ to be back above the watermark (0: enough)."""
        return _need(self.results_dir, self.policy.min_free), \
            _need(self.logs_dir, self.policy.min_free)

    async def make_space(self) -> str:
        """JobManager calls this when a job would be refused for lack of space: prune what the
        policy allows, and say what could not go (for the 507 message)."""
        need_results, need_logs = self.need_bytes()
        if not (need_results or need_logs):
            return ""
        report = await self.prune("space", need_bytes=need_results)
        freed = report.freed_bytes
        said = f"retention ({report.policy}) freed {freed / 1e6:.1f} MB"
        if not self.policy.enabled:
            said = "retention is off (no --keep-days, --keep-runs or --max-results-size), so " \
                   "nothing was deleted"
        if report.kept:
            kept = ", ".join(f"{k.run_id} ({k.why})" for k in report.kept[:10])
            more = f" and {len(report.kept) - 10} more" if len(report.kept) > 10 else ""
            said += f"; not deleted: {kept}{more}"
        return said

    # pruning -------------------------------------------------------------------------------
    async def prune(self, trigger: str, *, dry_run: bool = False, by: str | None = None,
                    need_bytes: int = 0) -> PruneReport:
        async with self.lock:
            in_use = self._runs_in_use()
            facts = await asyncio.to_thread(collect, self.results_dir, in_use, self.sizes)
            actions, kept = plan(facts, self.policy, time.time(), need_bytes)
            jobs = self._old_jobs(facts, {a.run_id for a in actions if a.kind == "delete"})
            done: list[bool] = [False] * len(actions)
            if not dry_run:
                done = await asyncio.to_thread(self._execute, actions, trigger, by)
                for a, ok in zip(actions, done):
                    if ok and a.kind == "delete":
                        self.manager.mark_run_removed(a.run_id, f"deleted by retention "
                                                      f"({a.rule}) on {_today()}")
                if jobs:
                    removed = await self.manager.forget_jobs(jobs)
                    for job_id, age in removed:
                        self.pruner.record(RetentionEntry(
                            at=_iso_now(), action="delete-job", what=job_id,
                            rule="keep-job-days", size=0, age_days=round(age, 2),
                            trigger=trigger, by=by))
            return PruneReport(
                dry_run=dry_run, policy=self.policy.describe(), trigger=trigger,
                actions=[PruneAction(a.run_id, a.kind, a.rule, a.size, round(a.age_days, 2),
                                     a.staged, ok) for a, ok in zip(actions, done)],
                jobs=jobs, kept=[KeptRun(k.run_id, k.why, k.size) for k in kept],
                freed_bytes=sum(a.size for a, ok in zip(actions, done)
                                if ok and a.kind == "delete"),
                results_free_bytes=_free(self.results_dir), logs_free_bytes=_free(self.logs_dir))

    def _execute(self, actions: list[Action], trigger: str, by: str | None) -> list[bool]:
        done = []
        for a in actions:
            done.append(self.pruner.execute(a, trigger, by))
            time.sleep(0)   # hand the GIL back to the event loop between runs
        return done

    def _runs_in_use(self) -> set[str]:
        """Runs a job that is not final writes, resumes or will resume."""
        out = set()
        for rec in self.manager.list_jobs():
            if rec.status in FINAL:
                continue
            if rec.config.resume:
                out.add(rec.config.resume)
            if rec.progress is not None and rec.progress.run_id:
                out.add(rec.progress.run_id)
        return out

    def _old_jobs(self, facts: list[RunFacts], deleting: set[str]) -> list[str]:
        """Final jobs older than keep-job-days whose run is gone (or goes now): a job record
        stays as long as its run does."""
        days = self.policy.keep_job_days
        if days is None:
            return []
        alive = {f.run_id for f in facts} - deleting
        cutoff = time.time() - days * 86400.0
        out = []
        for rec in self.manager.list_jobs():
            if rec.status not in FINAL:
                continue
            run = rec.progress.run_id if rec.progress else None
            if run is not None and run in alive:
                continue
            finished = _ts(rec.finished_at or rec.created_at)
            if finished is not None and finished < cutoff:
                out.append(rec.job_id)
        return out

    def history(self, limit: int) -> list[RetentionEntry]:
        if not 1 <= limit <= 10000:
            raise InvalidRequest(f"limit: must be 1..10000, got {limit}")
        return self.pruner.read_history(limit)


def _free(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _need(path: Path, min_free: float) -> int:
    """Bytes to free for the watermark, and at least for what a job needs to start (twice
    MIN_FREE_BYTES: on a small filesystem that is more than the percentage)."""
    try:
        u = shutil.disk_usage(path)
    except OSError:
        return 0
    want = max(int(u.total * min_free), 2 * MIN_FREE_BYTES)
    return max(0, want - u.free)


def _ts(iso: str | None) -> float | None:
    try:
        return dt.datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None


def _iso_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")


__all__ = ["Retention", "Policy", "Kept"]

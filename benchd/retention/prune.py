"""Carrying out a retention plan, crash-safely, and remembering what was done.

Deletion is two-phase: the run (or archive, or job record and log) is renamed into a trash
directory on the same filesystem in one step, then deleted. A kill -9 at any moment leaves the
whole run in place or none of it in view; `empty_trash` (at benchd's start) finishes the
deleting. Every deletion and archival is one INFO line in benchd's log and one JSON line in
logs/retention.jsonl (appended and fsynced), which `benchctl prune --history` shows.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from benchd.retention.policy import Action, RunFacts
from pipeline import archive, loader, pins, staged
from pipeline.atomicio import fsync_dir
from pipeline.results import LEGACY_RUN_ID_RE, RUN_ID_RE, STAGING

log = logging.getLogger(__name__)

TRASH = ".trash"
HISTORY = "retention.jsonl"


class RetentionEntry(msgspec.Struct, omit_defaults=True):
    """One line of logs/retention.jsonl."""
    at: str                               # UTC ISO-8601
    action: str                           # delete | archive | delete-job
    what: str                             # run id (or job id)
    rule: str
    size: int
    age_days: float
    trigger: str                          # hourly | watermark | start | manual | space
    by: str | None = None                 # who asked (manual prunes)


def run_created(run_id: str) -> float | None:
    """UNIX start time from a run id (UTC): YYYY-MM-DD_HH-MM-SS[_NN] or legacy YYYY-MM-DD."""
    try:
        if RUN_ID_RE.fullmatch(run_id):
            t = dt.datetime.strptime(run_id[:19], "%Y-%m-%d_%H-%M-%S")
        elif LEGACY_RUN_ID_RE.fullmatch(run_id):
            t = dt.datetime.strptime(run_id, "%Y-%m-%d")
        else:
            return None
    except ValueError:
        return None
    return t.replace(tzinfo=dt.timezone.utc).timestamp()


def tree_size(path: Path) -> int:
    """Bytes allocated on disk under `path` (st_blocks: what deleting it gives back)."""
    total = 0
    stack = [str(path)]
    while stack:
        p = stack.pop()
        try:
            st = os.lstat(p)
        except OSError:
            continue
        total += st.st_blocks * 512
        if os.path.isdir(p) and not os.path.islink(p):
            try:
                stack.extend(os.path.join(p, n) for n in os.listdir(p))
            except OSError:
                pass
    return total


class SizeCache:
    """Published runs never change: their size is measured once per benchd life."""

    def __init__(self) -> None:
        self._sizes: dict[tuple[str, bool], int] = {}

    def size(self, results_dir: Path, run_id: str, archived: bool) -> int:
        key = (run_id, archived)
        if key not in self._sizes:
            if archived:
                self._sizes[key] = sum(tree_size(p) for p in (
                    archive.archive_path(results_dir, run_id),
                    archive.detail_path(results_dir, run_id)))
            else:
                self._sizes[key] = tree_size(results_dir / run_id)
        return self._sizes[key]

    def forget(self, run_id: str) -> None:
        self._sizes.pop((run_id, True), None)
        self._sizes.pop((run_id, False), None)


def collect(results_dir: Path, in_use: set[str], sizes: SizeCache) -> list[RunFacts]:
    """Facts about every run: published (both layouts), archived and staged."""
    results_dir = Path(results_dir)
    pinned = set(pins.read_pins(results_dir))
    out: list[RunFacts] = []
    for summary in _all_runs(results_dir):
        created = run_created(summary.run_id)
        if created is None:
            continue
        out.append(RunFacts(summary.run_id, created,
                            sizes.size(results_dir, summary.run_id, summary.archived),
                            pinned=summary.run_id in pinned, in_use=summary.run_id in in_use,
                            archived=summary.archived))
    for s in staged.list_staged(results_dir):
        created = run_created(s.run_id)
        if created is None:
            continue
        out.append(RunFacts(s.run_id, created, tree_size(results_dir / STAGING / s.run_id),
                            pinned=s.run_id in pinned, in_use=s.in_use or s.run_id in in_use,
                            staged=True))
    return out


def _all_runs(results_dir: Path, page: int = 100) -> list:
    """Every published run, read a page at a time with a pause between pages: this runs in a
    worker thread, and the pause hands the GIL back to the event loop (the API stays quick
    while thousands of manifests are read)."""
    runs, before = [], None
    while True:
        got = loader.page_runs(results_dir, limit=page, before=before)
        runs.extend(got.runs)
        if got.next is None:
            return runs
        before = got.next
        time.sleep(0)


class Pruner:
    """Executes actions under one results dir; `history` is logs/retention.jsonl."""

    def __init__(self, results_dir: Path, logs_dir: Path, sizes: SizeCache) -> None:
        self.results_dir = Path(results_dir)
        self.logs_dir = Path(logs_dir)
        self.sizes = sizes
        self.history = self.logs_dir / HISTORY
        # held while a pin is written, and while a run is checked for a pin and moved away:
        # a pin that arrives after the plan was made still saves its run
        self.pin_lock = threading.Lock()

    def pin(self, pin: Any) -> None:
        with self.pin_lock:
            pins.write_pin(self.results_dir, pin)

    def execute(self, action: Action, trigger: str, by: str | None = None) -> bool:
        """Carry out one action; False (and a warning) if the run changed under us."""
        try:
            if action.kind == "archive":
                done = self._archive(action.run_id)
            else:
                with self.pin_lock:
                    done = not pins.is_pinned(self.results_dir, action.run_id)
                    if done and action.staged:
                        staged.discard_staged(self.results_dir, action.run_id)
                    elif done and action.archived:
                        self._trash_files([
                            archive.archive_path(self.results_dir, action.run_id),
                            archive.detail_path(self.results_dir, action.run_id)])
                    elif done:
                        self._trash_dir(self.results_dir / action.run_id)
        except (OSError, LookupError, ValueError, staged.StagedRunInUse) as e:
            log.warning("retention: could not %s run %s: %s", action.kind, action.run_id, e)
            return False
        if not done:
            log.info("retention: run %s was pinned meanwhile; kept", action.run_id)
            return False
        self.sizes.forget(action.run_id)
        self.record(RetentionEntry(at=_now(), action=action.kind, what=action.run_id,
                                   rule=action.rule, size=action.size,
                                   age_days=round(action.age_days, 2), trigger=trigger, by=by))
        return True

    def record(self, entry: RetentionEntry) -> None:
        log.info("retention: %s %s (%s, %.1f MB, %.1f days old, rule %s, trigger %s%s)",
                 "archived" if entry.action == "archive" else "deleted", entry.what,
                 "job" if entry.action == "delete-job" else "run", entry.size / 1e6,
                 entry.age_days, entry.rule, entry.trigger, f", by {entry.by}" if entry.by else "")
        try:
            fd = os.open(self.history, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o640)
            try:
                os.write(fd, msgspec.json.encode(entry) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            log.error("retention: cannot append to %s: %s", self.history, e.strerror)

    def read_history(self, limit: int) -> list[RetentionEntry]:
        """The newest `limit` entries, newest first (read from the end of the file)."""
        try:
            with open(self.history, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - limit * 400))
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in reversed(data.splitlines()):
            try:
                out.append(msgspec.json.decode(line, type=RetentionEntry))
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if len(out) >= limit:
                break
        return out

    def _archive(self, run_id: str) -> bool:
        """Compress (slow, outside the pin lock), then keep the run directory or move it away
        under the lock: a run pinned meanwhile stays as it was, its archive dropped."""
        if pins.is_pinned(self.results_dir, run_id):
            return False
        detail = loader.load_run(self.results_dir, run_id)
        archive.archive_run(self.results_dir, run_id, detail)
        with self.pin_lock:
            if pins.is_pinned(self.results_dir, run_id):
                archive.archive_path(self.results_dir, run_id).unlink(missing_ok=True)
                archive.detail_path(self.results_dir, run_id).unlink(missing_ok=True)
                return False
            self._trash_dir(self.results_dir / run_id)
        return True

    def _trash_dir(self, path: Path) -> None:
        trash = self.results_dir / TRASH
        trash.mkdir(mode=0o700, exist_ok=True)
        dst = trash / f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}"
        os.rename(path, dst)                 # one step: the run is whole, or out of view
        fsync_dir(path.parent)
        shutil.rmtree(dst, ignore_errors=True)

    def _trash_files(self, paths: list[Path]) -> None:
        trash = self.results_dir / TRASH
        trash.mkdir(mode=0o700, exist_ok=True)
        dst = trash / f"archive.{os.getpid()}.{os.urandom(4).hex()}"
        dst.mkdir()
        for p in paths:                       # the archive first: without it, it is not listed
            os.rename(p, dst / p.name)
        fsync_dir(paths[0].parent)
        shutil.rmtree(dst, ignore_errors=True)


def empty_trash(*dirs: Path) -> int:
    """Finish deletions a crash interrupted; returns how many entries were removed."""
    n = 0
    for d in dirs:
        trash = Path(d) / TRASH
        try:
            names = os.listdir(trash)
        except FileNotFoundError:
            continue
        for name in names:
            p = trash / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            n += 1
    return n


def _now() -> str:
    return dt.datetime.fromtimestamp(time.time(), dt.timezone.utc).isoformat(
        timespec="seconds")

"""Unpublished runs in results/.staging: which exist, how far they got, whether one can be
resumed now. A run cancelled through benchd, stopped by Ctrl-C, killed or broken stays there
(never read as a result); this listing is how a user finds its id for `--resume`.

Cheap to import (msgspec and stdlib): benchd serves it.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import msgspec

from pipeline import schema
from pipeline.lockprobe import lock_is_held, lock_is_held_by_us
from pipeline.atomicio import fsync_dir
from pipeline.results import (LEGACY_LOCK, LOCK, MANIFEST, RUN_ID_RE, STAGING, lock_run,
                             read_manifest)

log = logging.getLogger(__name__)

DISCARDED_PREFIX = ".discarded-"  # a discarded run on its way out (hidden: never listed)
ABANDONED_REASON = ("its orchestrator is gone without recording why (killed, or its benchd "
                    "job ended unknown or failed): the manifest still said running, but no "
                    "process holds the run's lock")


class NotStaged(LookupError):
    """No staged run of that id (never was, or already discarded or published)."""


class AlreadyPublished(NotStaged):
    """The run id names a published run: results are never deleted this way."""


class StagedRunInUse(RuntimeError):
    """An orchestrator holds the run's lock: it is running, resuming or publishing it."""


def summarize(run_path: Path, *, locked_here: bool = False) -> schema.StagedRunSummary | None:
    """The staged run at run_path, or None (with a warning) if its manifest is unreadable.
    A manifest that says running while no orchestrator holds the run's lock (`locked_here`:
    only the caller does) is reported interrupted: its orchestrator died (SIGKILL, a lost
    machine) before it could say so, and every reader must see that, not a live run."""
    try:
        m = read_manifest(run_path / MANIFEST)
    except FileNotFoundError:
        return None     # claimed a moment ago, or released: nothing written yet
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
        log.warning("skipping staged run %s: unreadable manifest: %s", run_path, e)
        return None
    in_use = not locked_here and (lock_is_held(run_path / LOCK)
                                  or lock_is_held_by_us(run_path / LEGACY_LOCK))
    status, reason = m.status, m.reason
    if status == schema.RUN_RUNNING and not in_use:
        status, reason = schema.RUN_INTERRUPTED, ABANDONED_REASON
    return schema.StagedRunSummary(
        run_id=run_path.name, status=status, created_at=m.created_at, updated_at=m.updated_at,
        reason=reason, experiments=list(m.config.experiments),
        done=[e for e in m.config.experiments if e in m.experiments], n=m.config.n,
        seed=m.config.seed, in_use=in_use,
        resumable=not in_use and m.status != schema.RUN_COMPLETE)


def list_staged(results_dir: Path) -> list[schema.StagedRunSummary]:
    """Every unpublished run under results_dir/.staging, newest first."""
    staging = Path(results_dir) / STAGING
    try:
        entries = sorted(staging.iterdir(), key=lambda p: p.name, reverse=True)
    except (FileNotFoundError, NotADirectoryError):
        return []
    runs = []
    for d in entries:
        if d.is_symlink() or not d.is_dir() or not RUN_ID_RE.fullmatch(d.name):
            continue
        if (Path(results_dir) / d.name).exists():
            continue    # published a moment ago (the rename is the publish)
        summary = summarize(d)
        if summary is not None:
            runs.append(summary)
    return runs


def find_staged(results_dir: Path, run_id: str) -> schema.StagedRunSummary | None:
    """The staged run `run_id` (a checked id, never a path), or None if there is none.
    ValueError: not a run id."""
    try:
        return summarize(locate(results_dir, run_id))
    except NotStaged:
        return None


def locate(results_dir: Path, run_id: str) -> Path:
    """The staging directory of run `run_id`. ValueError: not a run id; AlreadyPublished,
    NotStaged: there is no staged run of that id."""
    if not RUN_ID_RE.fullmatch(run_id):
        raise ValueError(f"not a run id: {run_id!r} (expected YYYY-MM-DD_HH-MM-SS[_NN])")
    path = Path(results_dir) / STAGING / run_id
    if path.is_symlink() or not path.is_dir():
        if os.path.lexists(Path(results_dir) / run_id):
            raise AlreadyPublished(f"run {run_id} is published; published results are "
                                   f"never deleted through benchd")
        raise NotStaged(f"no staged run {run_id}")
    return path


def discard_staged(results_dir: Path, run_id: str) -> schema.StagedRunSummary | None:
    """Delete the staged run `run_id` and return what it was (None if its manifest was
    unreadable). Under the run's lock it is renamed out of .staging in one step, so a resume
    or publish either holds the lock first (StagedRunInUse) or finds no run; the files are
    removed after. ValueError: not a run id."""
    path = locate(results_dir, run_id)
    staging = path.parent
    try:
        fd = lock_run(path)
    except BlockingIOError:
        raise StagedRunInUse(f"an orchestrator is working on run {run_id} right now") from None
    except FileNotFoundError:
        raise NotStaged(f"no staged run {run_id} (discarded or published a moment ago)") \
            from None
    try:
        summary = summarize(path, locked_here=True)
        if summary is not None:
            summary = msgspec.structs.replace(summary, resumable=False)
        trash = staging / f"{DISCARDED_PREFIX}{run_id}-{os.getpid()}-{os.urandom(4).hex()}"
        os.rename(path, trash)
        fsync_dir(staging)
    finally:
        os.close(fd)
    _remove(trash)
    return summary


def remove_discarded(results_dir: Path) -> int:
    """Delete what discards a crash interrupted left in .staging (benchd calls it once at
    start, when no discard of its own is running). Returns how many were removed."""
    try:
        entries = list((Path(results_dir) / STAGING).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return 0
    mine = str(os.getpid())     # this process's own discards, in progress: not leftovers
    gone = [d for d in entries if d.name.startswith(DISCARDED_PREFIX) and d.is_dir()
            and not d.is_symlink() and d.name.rsplit("-", 2)[-2:-1] != [mine]]
    for d in gone:
        _remove(d)
    return len(gone)


def _remove(d: Path) -> None:
    try:
        shutil.rmtree(d)
    except OSError as e:    # left for remove_discarded at the next start
        log.warning("cannot remove discarded run %s: %s", d, e)

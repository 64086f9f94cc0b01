"""Unpublished runs in results/.staging: which exist, how far they got, whether one can be
resumed now. A run cancelled through benchd, stopped by Ctrl-C, killed or broken stays there
(never read as a result); this listing is how a user finds its id for `--resume`.

Cheap to import (msgspec and stdlib): benchd serves it.
"""
from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from pipeline import schema
from pipeline.lockprobe import lock_is_held
from pipeline.results import LOCK, MANIFEST, RUN_ID_RE, STAGING

log = logging.getLogger(__name__)


def summarize(run_path: Path) -> schema.StagedRunSummary | None:
    """The staged run at run_path, or None (with a warning) if its manifest is unreadable."""
    try:
        m = msgspec.json.decode((run_path / MANIFEST).read_bytes(), type=schema.Manifest)
    except FileNotFoundError:
        return None     # claimed a moment ago, or released: nothing written yet
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
        log.warning("skipping staged run %s: unreadable manifest: %s", run_path, e)
        return None
    in_use = lock_is_held(run_path / LOCK)
    return schema.StagedRunSummary(
        run_id=run_path.name, status=m.status, created_at=m.created_at, updated_at=m.updated_at,
        reason=m.reason, experiments=list(m.config.experiments),
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
    """The staged run `run_id` (a checked id, never a path), or None if there is none."""
    if not RUN_ID_RE.fullmatch(run_id):
        raise ValueError(f"not a run id: {run_id!r} (expected YYYY-MM-DD_HH-MM-SS[_NN])")
    d = Path(results_dir) / STAGING / run_id
    if d.is_symlink() or not d.is_dir():
        return None
    return summarize(d)

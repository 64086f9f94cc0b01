"""Discarding a staged run through benchd: who may, and what each refusal is called.

A cancelled or broken run stays in results/.staging (never read as a result) until it is
resumed or discarded. The files belong to the benchd user, so people cannot delete them
themselves; benchd does it for the person whose job created the run (resuming someone's run
does not make it yours), and for root and the admin group. Published results are never
deleted this way.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from benchd import audit
from benchd.errors import Forbidden, InvalidRequest, RunInUse, RunNotFound
from benchd.jobs import JobManager
from benchd.peercred import PeerCred
from pipeline import staged
from pipeline.schema import DiscardedRun

T = TypeVar("T")


async def discard_staged_run(manager: JobManager, results_dir: Path, run_id: str,
                             caller: PeerCred) -> DiscardedRun:
    """Delete staged run `run_id` for `caller`, or raise the API error that says why not
    (checked in this order: 400 id, 404 no such run, 409 in use, 403 not theirs)."""
    await asyncio.to_thread(_api_errors, staged.locate, results_dir, run_id)
    active = manager.active()
    if active is not None and run_id in (active.config.resume,
                                         active.progress and active.progress.run_id):
        raise RunInUse(f"run {run_id}: job {active.job_id} is working on it right now")
    owners = manager.run_owners(run_id)
    if caller.uid not in owners and not await asyncio.to_thread(manager.is_admin, caller.uid):
        whose = (f"was started by {', '.join(sorted(owners.values()))}" if owners
                 else "was not started through benchd")
        raise Forbidden(f"run {run_id} {whose}; only they, root or the admin group may "
                        f"discard it")
    summary = await asyncio.to_thread(_api_errors, staged.discard_staged, results_dir, run_id)
    audit.discarded(run_id, caller.user, caller.uid)
    return DiscardedRun(run_id=run_id, run=summary)


def _api_errors(fn: Callable[[Path, str], T], results_dir: Path, run_id: str) -> T:
    """fn(results_dir, run_id) with pipeline.staged's refusals turned into API errors."""
    try:
        return fn(results_dir, run_id)
    except ValueError:
        shown = run_id if len(run_id) <= 40 else run_id[:40] + "…"
        raise InvalidRequest(f"run: not a run id: {shown!r} (expected "
                             f"YYYY-MM-DD_HH-MM-SS[_NN])") from None
    except staged.AlreadyPublished as e:
        raise InvalidRequest(f"run: {e}") from None
    except staged.NotStaged as e:
        raise RunNotFound(f"{e} (GET /api/results/staged or `benchctl results --staged` "
                          f"lists them)") from None
    except staged.StagedRunInUse as e:
        raise RunInUse(str(e)) from None

"""Checks for a job that resumes a staged run (JobConfig.resume) before anything is spawned.

The orchestrator checks the same things itself (exit 2); doing it here turns a mistake into a
clear HTTP answer naming the field, instead of a job that fails a moment after it started.
"""
from __future__ import annotations

from pathlib import Path

from benchd.errors import InvalidRequest, RunInUse, RunNotFound
from benchd.schema import JobConfig
from pipeline.staged import find_staged

# what a resumed run takes from its stored config; the rest (label, notify) is about the job
_CONFIG_FIELDS = tuple(f for f in JobConfig.__struct_fields__
                       if f not in ("resume", "label", "notify", "queue", "priority",
                                    "after", "after_any", "preempt",
                                    "cpus", "exclusive", "memory_max"))  # where it runs


def resume_argv(config: JobConfig, results_dir: Path) -> list[str]:
    """The orchestrator argv tail for `config.resume`, or the error that refuses it."""
    run_id = config.resume or ""
    given = [f for f in _CONFIG_FIELDS if getattr(config, f) not in (None, False)]
    if given:
        raise InvalidRequest(f"resume: cannot be combined with {', '.join(given)}; a resumed "
                             f"run keeps the configuration it was started with")
    shown = run_id if len(run_id) <= 40 else run_id[:40] + "…"
    try:
        found = find_staged(results_dir, run_id)
    except ValueError:
        raise InvalidRequest(f"resume: not a run id: {shown!r} (expected "
                             f"YYYY-MM-DD_HH-MM-SS[_NN])") from None
    if found is None:
        if (results_dir / run_id).is_dir():
            raise InvalidRequest(f"resume: run {run_id} is already published")
        raise RunNotFound(f"resume: no staged run {run_id} (GET /api/results/staged or "
                          f"`benchctl results --staged` lists them)")
    if found.in_use:
        raise RunInUse(f"resume: an orchestrator is working on run {run_id} right now")
    return ["--resume", run_id]

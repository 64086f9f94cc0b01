"""Checkpoint at an experiment boundary: the contract between a supervisor of the pipeline
(benchd's executor) and the orchestrator, stdlib only (benchd's per-job supervisor imports it
on its start path).

Whoever runs the orchestrator may name a request file in CHECKPOINT_ENV. When that file
exists at an experiment boundary (the last experiment committed and recorded in the durable
manifest, the next one not begun), the orchestrator marks its staged run interrupted with
CHECKPOINT_REASON, publishes nothing and exits EXIT_CHECKPOINTED: everything measured so far
is kept, and `--resume RUN_ID` runs only the experiments still missing. A request seen after
the last experiment changes nothing (the run publishes). A file rather than a signal: the
request has to wait for the boundary anyway, it survives whoever made it (benchd may die),
and it cannot kill an orchestrator that has not installed a signal handler yet.
"""
from __future__ import annotations

import os

EXIT_CHECKPOINTED = 75      # EX_TEMPFAIL: stopped at a boundary on request; resumable
CHECKPOINT_ENV = "PIPELINE_CHECKPOINT_REQUEST"
CHECKPOINT_REASON = "checkpointed at an experiment boundary on request"


def requested() -> bool:
    """Does the request file named by CHECKPOINT_ENV exist? (one stat per boundary)"""
    path = os.environ.get(CHECKPOINT_ENV)
    return bool(path) and os.path.exists(path)

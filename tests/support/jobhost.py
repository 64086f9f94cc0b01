"""Host a JobManager in its own process so a test can SIGKILL "benchd" mid-job.

    python tests/support/jobhost.py ROOT [--start CONFIG_JSON] [--grace S] [--cancel-after-start]

Runs reconcile(), prints one JSON object per line on stdout:
  {"event": "reconciled", "lines": [...]}
  {"event": "started", "record": {...}}      with --start (the job is running)
  {"event": "cancel_sent"}                   with --cancel-after-start (cancel accepted; the
                                             host then waits for the final record)
  {"event": "final", "record": {...}}        the active job (started or reattached) ended
then, with --start and no cancel, waits forever (the test kills it); otherwise exits 0 once
the active job, if any, is final. The orchestrator is the fake one (tests/support).
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from benchd.jobs import JobManager  # noqa: E402
from benchd.schema import JobConfig  # noqa: E402
from tests.support import fake_orchestrator_argv  # noqa: E402


def say(event: str, **kw: object) -> None:
    sys.stdout.write(msgspec.json.encode({"event": event, **kw}).decode() + "\n")
    sys.stdout.flush()


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("root", type=Path)
    p.add_argument("--start", default=None)
    p.add_argument("--grace", type=float, default=10.0)
    p.add_argument("--cancel-after-start", action="store_true")
    a = p.parse_args()
    m = JobManager(a.root, orchestrator=fake_orchestrator_argv(), grace=a.grace)
    say("reconciled", lines=await m.reconcile())
    if a.start is not None:
        rec = await m.start(msgspec.json.decode(a.start, type=JobConfig), 1000, "tester")
        say("started", record=rec)
        if a.cancel_after_start:
            while m.log_size(rec.job_id) == 0:  # orchestrator has set up its signals
                await asyncio.sleep(0.005)
            task = asyncio.create_task(m.cancel(rec.job_id, 1000))
            await asyncio.sleep(0)  # let cancel() write the order and signal the supervisor
            while m.get(rec.job_id).cancel_requested_by is None:
                await asyncio.sleep(0.005)
            say("cancel_sent")
            say("final", record=await task)
            return 0
        await asyncio.Event().wait()
    active = m.active()
    if active is not None:
        last = None
        async for last in m.watch(active.job_id):
            pass
        say("final", record=last)
    await m.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

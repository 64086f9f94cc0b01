"""Start a benchmark job; print its id, or follow/wait for it and exit with its outcome.

Without --follow/--wait: prints the new job's id (or its record with --json) and exits 0 once
the orchestrator runs or the job is queued (1 if it could not even start). With no free slot
the job waits in benchd's queue (`benchctl queue`); --no-queue refuses instead (exit 5).
--priority N (-10..10; above 0: root or the admin group), --after JOB[,JOB] (start once those
completed; if one fails or is cancelled this job fails) and --after-any JOB[,JOB] (once they
ended, whatever the outcome) order it in the queue; a job that outranks a running one with no
free slot preempts it at its next experiment boundary (--preempt-now: SIGTERM at once, its
current experiment is redone). --follow streams the job's log: on a terminal the
`@@benchd-progress` lines are drawn as one progress line ("3/9 experiments · gmst_era");
piped, the raw log is passed through byte for byte (progress lines included, for scripts), with
no control characters. --wait shows nothing until the end. Both exit with the job's outcome
(0 completed, 1 failed, 3 cancelled, 7 unknown) and survive a benchd restart. Ctrl-C stops
following; the job keeps running. Unset options take the pipeline's defaults.
--resume RUN finishes a cancelled or interrupted run (`benchctl results --staged` lists them)
with the configuration it was started with; only its missing experiments run.
--notify TARGET (repeatable: https://..., http://..., mailto:user@host) tells TARGET about
the job's events (--notify-on: begin, end, fail, all, or event names; default: the end);
the [[notify]] targets of ~/.config/benchctl/config.toml are added to every run unless
--no-notify-defaults. A webhook is signed with its secret from that file or
$BENCHCTL_WEBHOOK_SECRET.
"""
from __future__ import annotations

import argparse
import os
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any

from benchctl import render
from benchctl.argtypes import add_follow_timeouts
from benchctl.client import job_path
from benchctl.exitcodes import INTERRUPTED, OK, USAGE, CliError, for_state
from benchd.defaults import JOB_START_TIMEOUT_S
from benchd.states import FINAL, WAITING

START_ANSWER_S = JOB_START_TIMEOUT_S + 30.0  # benchd answers a start once the job runs


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-e", "--experiments", action="append", metavar="NAMES",
                   help="experiments to run: 'a,b' or repeat -e (default: all); "
                        "see `benchctl experiments`")
    p.add_argument("--n", type=int, metavar="N", help="sample size per experiment")
    p.add_argument("--seed", type=int, metavar="S", help="random seed of the inputs")
    p.add_argument("--perf-rounds", type=int, metavar="R", help="timing rounds per adapter")
    p.add_argument("--no-perf", action="store_true", help="skip the timing measurements")
    p.add_argument("--ci", action="store_true", help="small, quick run (smaller N and rounds)")
    p.add_argument("--resume", metavar="RUN",
                   help="finish this staged run (see `benchctl results --staged`) with its "
                        "stored configuration; no other run option may be given")
    p.add_argument("--label", metavar="TEXT",
                   help="a label for the job (at most 64 printable characters), shown by "
                        "history and status and filtered on by `history --label`")
    p.add_argument("--notify", action="append", metavar="TARGET",
                   help="tell this webhook (https://...) or address (mailto:...) about the "
                        "job; repeatable")
    p.add_argument("--notify-on", metavar="EVENTS",
                   help="which events for --notify targets: begin,end,fail,all or names "
                        "such as completed,failed (default: end)")
    p.add_argument("--no-notify-defaults", action="store_true",
                   help="leave out the [[notify]] targets of ~/.config/benchctl/config.toml")
    p.add_argument("--no-queue", action="store_true",
                   help="refuse (exit 5, busy) instead of queueing when no slot is free")
    p.add_argument("--priority", type=int, metavar="N",
                   help="queue priority -10..10 (default 0; above 0: root or admin group)")
    p.add_argument("--after", action="append", metavar="JOB[,JOB]",
                   help="start only after these jobs completed (fails if one does not)")
    p.add_argument("--after-any", action="append", metavar="JOB[,JOB]",
                   help="start only after these jobs ended, whatever their outcome")
    p.add_argument("--preempt-now", action="store_true",
                   help="when it preempts a lower-priority running job: SIGTERM at once, not "
                        "at that job's next experiment boundary")

    p.add_argument("--cpus", type=int, metavar="K",
                   help="CPUs the job is pinned to, and BLAS/OpenMP threads (default 1)")
    p.add_argument("--exclusive", action="store_true",
                   help="every CPU benchd manages; waits until no other job runs")
    p.add_argument("--memory-max", metavar="SIZE",
                   help="memory limit of the job, e.g. 2G (at most benchd's --job-memory-max)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("-f", "--follow", action="store_true",
                      help="stream the log until the job ends; exit with its outcome")
    mode.add_argument("-w", "--wait", action="store_true",
                      help="wait quietly until the job ends; exit with its outcome")
    p.add_argument("--json", action="store_true",
                   help="print the job record (JobRecord) as JSON: the started record, or "
                        "the final one with --wait (not with --follow)")
    add_follow_timeouts(p, "--follow/--wait")


def config_from(args: argparse.Namespace) -> dict[str, Any]:
    """The JobConfig body: only what was given (the daemon validates values)."""
    body = _config_from(args)
    if getattr(args, "no_queue", False):
        body["queue"] = False
    if getattr(args, "priority", None) is not None:
        body["priority"] = args.priority
    if getattr(args, "preempt_now", False):
        from benchd.states import StopMode
        body["preempt"] = StopMode.NOW.value
    for key in ("after", "after_any"):
        if getattr(args, key, None):
            body[key] = [j.strip() for v in getattr(args, key) for j in v.split(",") if j.strip()]
    if getattr(args, "cpus", None) is not None:
        body["cpus"] = args.cpus
    if getattr(args, "exclusive", False):
        body["exclusive"] = True
    if getattr(args, "memory_max", None) is not None:
        body["memory_max"] = args.memory_max   # benchd parses and checks it (400 names it)
    return body


def _config_from(args: argparse.Namespace) -> dict[str, Any]:
    notify = notify_targets(args)
    if args.resume is not None:
        given = [f"--{k.replace('_', '-')}" for k in ("experiments", "n", "seed", "perf_rounds",
                                                       "no_perf", "ci")
                 if getattr(args, k) not in (None, False)]
        if given:
            raise CliError(f"--resume cannot be combined with {', '.join(given)}: a resumed "
                           f"run keeps the configuration it was started with", USAGE)
        extra = {**({"label": args.label} if args.label is not None else {}),
                 **({"notify": notify} if notify else {})}
        return {"resume": args.resume, **extra}
    body: dict[str, Any] = {"notify": notify} if notify else {}
    problems = _problems(args)
    if problems:
        raise CliError("; ".join(problems), USAGE)
    if args.experiments:
        names = [n.strip() for v in args.experiments for n in v.split(",")]
        body["experiments"] = names
    for key in ("n", "seed", "perf_rounds"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.no_perf:
        body["no_perf"] = True
    if args.ci:
        body["ci"] = True
    if args.label is not None:
        body["label"] = args.label   # benchd checks it (length, printable)
    return body


def notify_targets(args: argparse.Namespace) -> list[dict[str, Any]]:
    """--notify targets plus the user's defaults (the config file is read only if needed)."""
    if args.notify_on and not args.notify:
        raise CliError("--notify-on applies to --notify targets; give at least one", USAGE)
    if not args.notify and args.no_notify_defaults:
        return []
    from benchctl import userconfig
    if not args.notify and not os.path.exists(userconfig.path()):
        return []
    config = userconfig.load()
    on = [w.strip() for w in args.notify_on.split(",")] if args.notify_on else None
    explicit = [userconfig.target_for(url, on, config) for url in args.notify or ()]
    urls = {t["url"] for t in explicit}
    defaults = [] if args.no_notify_defaults else [
        t for t in userconfig.default_targets(config) if t["url"] not in urls]
    return defaults + explicit


# API field -> the flag a person typed (benchd's 400 messages start with the field name).
FLAGS: dict[str, str] = {"experiments": "--experiments", "n": "--n", "seed": "--seed",
                         "perf_rounds": "--perf-rounds", "no_perf": "--no-perf", "ci": "--ci",
                         "resume": "--resume", "label": "--label"}


def _problems(args: argparse.Namespace) -> list[str]:
    """Every bad value at once, each led by its flag (the same checks as benchd's, from
    pipeline.catalog, so nothing is started and the user fixes all in one go)."""
    from pipeline import catalog
    problems = []
    if args.experiments:
        names = [n.strip() for v in args.experiments for n in v.split(",")]
        if any(not n for n in names):
            problems.append(f"--experiments: every entry must be a non-empty name, got "
                            f"{','.join(args.experiments)!r}")
        else:
            problems += [f"--experiments: {p}" for p in catalog.experiment_problems(names)
                         if not p.startswith("known:")]
            if any("unknown experiment" in p for p in problems):
                problems.append(f"known experiments: {', '.join(catalog.EXPERIMENTS)} "
                                "(`benchctl experiments` describes them)")
    limits = {"n": (1, catalog.N_MAX), "seed": (0, catalog.SEED_MAX),
              "perf_rounds": (1, catalog.PERF_ROUNDS_MAX)}
    for key, (lo, hi) in limits.items():
        value = getattr(args, key)
        if value is not None:
            problem = catalog.int_problem(value, lo, hi)
            if problem:
                problems.append(f"{FLAGS[key]}: {problem}")
    return problems


def flag_message(message: str) -> str:
    """benchd's 'perf_rounds: must be ...; seed: ...' with the CLI's flags instead."""
    import re
    message = re.sub(r"(^|; )notify\[\d+\]\.(url|secret):", r"\1--notify:", message)
    message = re.sub(r"(^|; )notify\[\d+\]\.on:", r"\1--notify-on:", message)
    return re.sub(r"(^|; )(" + "|".join(FLAGS) + r"):", lambda m: m[1] + FLAGS[m[2]] + ":",
                  message)


def _started_outcome(job: dict[str, Any]) -> int:
    """Exit code of a plain `run`: 0 once the job runs (or already completed); the job's
    outcome when benchd answered with a final record (e.g. the orchestrator failed to start)."""
    status = job.get("status")
    return OK if status not in FINAL else for_state(status)


def _start(client: Any, body: dict[str, Any], raw: bool = False) -> Any:
    """POST the job; a refusal (400) names the CLI's flags, not the API's fields."""
    from benchctl.client import ApiError
    try:
        if raw:
            return client.call_raw("POST", "/api/benchmark/jobs", body, timeout=START_ANSWER_S)
        return client.call("POST", "/api/benchmark/jobs", body, timeout=START_ANSWER_S)
    except ApiError as exc:
        if exc.http_status == 400:
            exc.message = flag_message(exc.message)
        raise


def run(args: argparse.Namespace, ctx: Any) -> int:
    if args.json and args.follow:
        raise CliError("--json cannot be combined with --follow (use --wait --json)", USAGE)
    body = config_from(args)
    client = ctx.client
    if args.json and not args.wait:
        import json

        from benchctl import jsonout
        from benchd.schema import JobRecord
        raw = _start(client, body, raw=True)
        jsonout.emit(raw, JobRecord)
        return _started_outcome(json.loads(raw))
    job = _start(client, body)
    job_id = job["job_id"]
    if not (args.follow or args.wait):
        print(job_id)
        if job.get("status") in WAITING:
            sys.stderr.write(f"benchctl: job {job_id} queued (position "
                             f"{job.get('queue_position')}); `benchctl queue` shows the queue\n")
        code = _started_outcome(job)
        if code != OK:  # it could not even start: say why
            sys.stderr.write(render.final_line(job, render.use_colour(sys.stderr)) + "\n")
        return code
    from benchctl import follow
    if job.get("status") in WAITING:
        from benchctl import waiting
        job = waiting.through_queue(client, job, sys.stderr)
    if args.follow:
        if job.get("status") not in FINAL:
            sys.stderr.write(f"benchctl: job {job_id} started\n")
        sink = follow.make_sink(job.get("progress"), client, job)
        start: dict[str, Any] = {"offset": 0}
    else:
        sink, start = follow.NullSink(), {"tail": 0}
    try:
        final = follow.follow(client, job_id, sink, reconnect_s=args.reconnect_timeout,
                              stall_s=args.stall_timeout, **start)
    except KeyboardInterrupt:
        raise CliError(f"stopped following; job {job_id} keeps running "
                       f"(`benchctl tail -f {job_id}` to resume, `benchctl cancel {job_id}` "
                       f"to stop it)", INTERRUPTED) from None
    if args.json:
        from benchctl import jsonout
        from benchd.schema import JobRecord
        jsonout.emit(client.call_raw("GET", job_path(job_id)), JobRecord)
        return for_state(final["status"])
    return follow.report_outcome(final)

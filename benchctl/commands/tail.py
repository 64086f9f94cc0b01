"""Show the last lines of a job's log; with -f, follow it to the end of the job.

JOB is an id or a unique prefix of one; default: the running job, else the newest. On a
terminal, progress lines are drawn as a progress line (and not counted in LINES); piped, the
log is passed through as is (LINES counts every line). -f survives a benchd restart: it
reconnects (with backoff) and continues at the byte it reached, so no line is lost or
repeated. When the job ends, -f prints how on stderr ("job … cancelled by alice after 1m12s")
and exits with the job's outcome, as `run --follow` does (0 completed, 1 failed, 3 cancelled,
7 unknown). Ctrl-C stops following, never the job.
"""
from __future__ import annotations

import argparse
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any

from benchctl import follow, jobref
from benchctl.argtypes import add_follow_timeouts
from benchctl.client import job_path, query
from benchctl.exitcodes import INTERRUPTED, OK, USAGE, CliError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", nargs="?", metavar="JOB", help="job id or unique prefix")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new lines until the job ends")
    p.add_argument("-n", "--lines", type=int, default=10, metavar="LINES",
                   help="how many lines from the end to start with (default 10)")
    add_follow_timeouts(p, "-f")


def run(args: argparse.Namespace, ctx: Any) -> int:
    if args.lines < 0:
        raise CliError(f"--lines must be >= 0, got {args.lines}", USAGE)
    client = ctx.client
    job = jobref.get_job(client, args.job) if args.job else jobref.active_or_latest(client)
    job_id = job["job_id"]
    sink = follow.make_sink(job.get("progress"), client, job) if args.follow \
        else follow.make_sink()
    offset = None
    if isinstance(sink, follow.TerminalSink):
        try:
            offset, data = follow.visible_tail(client, job_id, args.lines)
        except BaseException:
            sink.close()
            raise
        if not args.follow:
            sink.write(data)
            sink.close()
            return OK
    if not args.follow:
        resp = client.open("GET", job_path(job_id, "/logs") + query(tail=args.lines))
        if resp.status >= 400:
            from benchctl.client import raise_api_error
            raise_api_error(resp.status, resp.read())
        try:
            for chunk in resp.iter_body():
                sink.write(chunk)
        finally:
            sink.close()
        return OK
    try:
        final = follow.follow(client, job_id, sink, offset=offset, tail=args.lines,
                              reconnect_s=args.reconnect_timeout, stall_s=args.stall_timeout)
    except KeyboardInterrupt:
        raise CliError(f"stopped following; job {job_id} keeps running", INTERRUPTED) from None
    return follow.report_outcome(final)

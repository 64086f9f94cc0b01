"""Print a job's whole log as it is now: plain bytes, streamed (pager-friendly).

JOB is an id or a unique prefix of one. Piped, the log is passed through byte for byte
(`@@benchd-progress` lines included, for scripts); on a terminal those are drawn as one
progress line, as `tail` does, and a log longer than the screen goes through $PAGER
(`--no-pager` to not). A reader that stops early (`benchctl logs JOB | head`) ends benchctl
quietly.
"""
from __future__ import annotations

import argparse
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any

from benchctl import jobref
from benchctl.client import StreamCut, job_path, query, raise_api_error
from benchctl.exitcodes import INTERNAL, OK, CliError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", metavar="JOB", help="job id or unique prefix")


def run(args: argparse.Namespace, ctx: Any) -> int:
    client = ctx.client
    job_id = jobref.get_job(client, args.job)["job_id"]
    # the log is read from a file: a benchd silent for the client timeout (30 s) is stuck
    resp = client.open("GET", job_path(job_id, "/logs") + query(offset=0))
    if resp.status >= 400:
        raise_api_error(resp.status, resp.read())
    from benchctl import follow, render
    sink = follow.make_sink()   # a terminal draws progress lines as one status line
    if ctx.pager and render.is_tty(sys.stdout):
        from benchctl import pager
        sink = pager.PagedLog(sink, render.screen_rows(sys.stdout))
    try:
        for chunk in resp.iter_body():
            sink.write(chunk)
    except StreamCut as exc:
        raise CliError(f"the log stream was cut off ({exc}); run again", INTERNAL) from None
    except TimeoutError:
        raise CliError(f"benchd stopped sending the log (nothing for {client.timeout:g} s); "
                       f"run again", INTERNAL) from None
    finally:
        resp.close()
        sink.close()
    return OK

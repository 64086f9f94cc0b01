"""`benchd`: run the benchmark job daemon (started by hand, or by systemd via benchd.socket).

Exit status: 0 stopped cleanly (SIGTERM/SIGINT), 1 could not start (message on stderr:
root already served, socket in use, ...) or crashed, 2 usage error.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import click

from benchd.defaults import (DEFAULT_CLIENT_TIMEOUT_S, DEFAULT_GRACE_S, NOTIFY_CONFIG,
                             ROOT_ENV, SOCKET_ENV, local_socket)

log = logging.getLogger("benchd")

# syslog priorities for journald's "<N>" line prefix (SyslogLevelPrefix=yes, the default)
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


class JournalFormatter(logging.Formatter):
    """No timestamp (journald adds one) and a `<N>` priority prefix on every line, so that a
    traceback stays at error priority as a whole."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return "\n".join(f"<{prio}>{line}" for line in super().format(record).splitlines())


def stderr_is_journal() -> bool:
    """True when stderr is the journal stream systemd connected (JOURNAL_STREAM=dev:ino
    matches fd 2), not merely inherited by something started from a service."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(2)
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("aiohttp.server").addFilter(_malformed_http_at_debug)


def _malformed_http_at_debug(record: logging.LogRecord) -> bool:
    """aiohttp logs every request its parser refuses (400: not HTTP, NUL in the target,
    overlong lines) at ERROR with a traceback: any client sending garbage would flood the
    journal. Such records become one DEBUG line; everything else passes unchanged."""
    exc = record.exc_info[1] if record.exc_info else None
    from aiohttp.http_exceptions import HttpProcessingError
    if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
        if logging.getLogger("aiohttp.server").isEnabledFor(logging.DEBUG):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            why = (exc.message or str(exc)).strip().splitlines() or ["?"]
            record.msg, record.args = "refused malformed HTTP (400): %s", (why[0],)
            record.exc_info = record.exc_text = None
            return True
        return False
    return True


def _octal_mode(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise click.BadParameter(f"expected an octal mode such as 0660, got {value!r}") from None
    if not 0 <= mode <= 0o777:
        raise click.BadParameter(f"mode must be between 0000 and 0777, got {value}")
    return mode


def _argv_json(ctx: click.Context, param: click.Parameter, value: str | None
               ) -> list[str] | None:
    if value is None:
        return None
    try:
        argv = json.loads(value)
    except ValueError as e:
        raise click.BadParameter(f"expected a JSON list of strings: {e}") from None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise click.BadParameter(f"expected a non-empty JSON list of strings, got {value!r}")
    return argv


def _hosts(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(h.strip().lower() for h in value.split(",") if h.strip())

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """SIZE: bytes, or a number with K, M, G or T (powers of 1024)."""
    if value is None:
        return None
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    num, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "")
    try:
        size = int(float(num) * _UNITS[unit])
    except ValueError:
        raise click.BadParameter(f"expected a size such as 50G or 800M, got {value!r}") from None
    if size <= 0:
        raise click.BadParameter(f"must be more than 0, got {value!r}")
    return size


def _cpu_list(ctx: click.Context, param: click.Parameter, value: str | None
              ) -> list[int] | None:
    """--cpus: a cpulist of online CPUs this process may run on."""
    if value is None:
        return None
    from benchd.cpusets import online_cpus, parse_cpu_list
    try:
        cpus = parse_cpu_list(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    usable = set(online_cpus()) & os.sched_getaffinity(0)
    missing = [c for c in cpus if c not in usable]
    if missing:
        raise click.BadParameter(f"CPU(s) {missing} are not online or not allowed to benchd "
                                 f"(usable: {sorted(usable)})")
    return cpus


def _slurm_time(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from benchd.executors.slurm import check_time_limit
    try:
        return check_time_limit(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _slurm_extra(ctx: click.Context, param: click.Parameter, value: str | None
                 ) -> tuple[str, ...]:
    import shlex
    try:
        return tuple(shlex.split(value or ""))
    except ValueError as e:
        raise click.BadParameter(f"{e}: {value!r}") from None


@click.command(context_settings={"help_option_names": ["-h", "--help"],
                                 "max_content_width": 100})
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              envvar=ROOT_ENV, default=".", show_default="current directory",
              help="Lab root: jobs in <root>/logs, results in <root>/results, lock in <root>/run.")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar=SOCKET_ENV, default=None,
              help="Unix socket to listen on [default: <root>/run/benchd.sock]. "
                   "Ignored when systemd passes a socket (LISTEN_FDS).")
@click.option("--socket-mode", default="0660", show_default=True, callback=_octal_mode,
              envvar="BENCHD_SOCKET_MODE", help="Permissions of a socket benchd creates itself "
              "(its directory is created 0750).")
@click.option("--grace", type=click.FloatRange(min=0.0, max=3600.0), default=DEFAULT_GRACE_S,
              show_default=True, envvar="BENCHD_GRACE",
              help="Default seconds between SIGTERM and SIGKILL when a job is cancelled.")
@click.option("--client-timeout", type=click.FloatRange(min=0.1, max=3600.0),
              default=DEFAULT_CLIENT_TIMEOUT_S, show_default=True, envvar="BENCHD_CLIENT_TIMEOUT",
              help="Close a connection that sends no complete request head for this many "
                   "seconds (stalled, half-sent or idle keep-alive); a request body must arrive "
                   "within it, else 408. Followers of a running job are never cut.")
@click.option("--admin-group", default=None, envvar="BENCHD_ADMIN_GROUP",
              help="Members of this group (and root) may cancel other users' jobs.")
@click.option("--on-stop", type=click.Choice(["leave", "cancel"]), default="leave",
              show_default=True, envvar="BENCHD_ON_STOP",
              help="On SIGTERM: leave the running job running (reattached at next start) or "
                   "cancel it (with the grace period) before exiting.")
@click.option("--orchestrator", default=None, callback=_argv_json, hidden=True,
              envvar="BENCHD_ORCHESTRATOR",
              help="JSON argv prefix replacing `python -m pipeline` (tests).")
@click.option("--notify-config", type=click.Path(dir_okay=False, path_type=Path),
              default=str(NOTIFY_CONFIG), show_default=True, envvar="BENCHD_NOTIFY_CONFIG",
              help="Notification settings (TOML): the SMTP server for mailto: targets and "
                   "server-wide targets. A missing default file means none.")
@click.option("--notify-allow-hosts", default=None, envvar="BENCHD_NOTIFY_ALLOW_HOSTS",
              help="Comma-separated host names webhooks may be sent to [default: any].")
@click.option("--notify-retry-base", type=click.FloatRange(min=0.01, max=3600.0), default=5.0,
              show_default=True, envvar="BENCHD_NOTIFY_RETRY_BASE", hidden=True,
              help="Seconds before the first retry of a failed delivery (doubles each time).")
@click.option("--notify-give-up", type=click.FloatRange(min=0.1), default=24 * 3600.0,
              show_default=True, envvar="BENCHD_NOTIFY_GIVE_UP", hidden=True,
              help="Seconds after an event when its failed delivery is dead-lettered.")

@click.option("--keep-days", metavar="D", type=click.FloatRange(min=0.0, min_open=True), default=None,
              envvar="BENCHD_KEEP_DAYS",
              help="Retention: delete result runs (and staged runs) older than D days "
                   "[default: never]. Pinned runs, the newest run and runs in use are kept.")
@click.option("--keep-runs", metavar="K", type=click.IntRange(min=1), default=None, envvar="BENCHD_KEEP_RUNS",
              help="Retention: always keep the newest K runs.")
@click.option("--max-results-size", metavar="SIZE", default=None, callback=_size, envvar="BENCHD_MAX_RESULTS_SIZE",
              help="Retention: delete the oldest runs while results/ holds more than SIZE "
                   "(e.g. 50G, 800M).")
@click.option("--keep-job-days", metavar="D", type=click.FloatRange(min=0.0, min_open=True), default=None,
              envvar="BENCHD_KEEP_JOB_DAYS",
              help="Retention: delete job records and logs of jobs that ended more than D days "
                   "ago, once their results run is gone.")
@click.option("--archive-after", metavar="D", type=click.FloatRange(min=0.0, min_open=True), default=None,
              envvar="BENCHD_ARCHIVE_AFTER",
              help="Retention: compress runs older than D days into results/.archive/ "
                   "(still listed and readable; `benchctl results --restore RUN`).")
@click.option("--min-free", metavar="PCT", type=click.FloatRange(min=0.0, max=50.0), default=5.0,
              show_default=True, envvar="BENCHD_MIN_FREE",
              help="Percent of the results/logs filesystem to keep free: below it, retention "
                   "prunes what its policy allows (only when a policy is set).")
@click.option("--slots", type=click.IntRange(min=1, max=64), default=1, show_default=True,
              envvar="BENCHD_SLOTS",
              help="Jobs that may run at once; further jobs wait in the queue.")
@click.option("--cpus", "cpu_list", metavar="LIST", default=None, callback=_cpu_list,
              envvar="BENCHD_CPUS",
              help="CPUs jobs may run on, e.g. 1-3 [default: every online CPU, but CPU 0 is "
                   "left to the system when there are more than two]. Each running job is "
                   "pinned to its own CPUs (whole cores: SMT siblings are never split).")
@click.option("--job-memory-max", metavar="SIZE", default=None, callback=_size,
              envvar="BENCHD_JOB_MEMORY_MAX",
              help="Memory limit of each job (e.g. 4G), and the most a job's memory_max may "
                   "ask for; over it, the job fails 'out of memory' [default: none].")
@click.option("--max-queued-per-user", type=click.IntRange(min=0), default=50,
              show_default=True, envvar="BENCHD_MAX_QUEUED_PER_USER",
              help="Waiting jobs one user may have; one more is refused (429 queue_full).")
@click.option("--executor", type=click.Choice(["local", "slurm"]), default="local",
              show_default=True, envvar="BENCHD_EXECUTOR",
              help="Where jobs run: local processes under benchd's supervisor, or Slurm batch "
                   "jobs (Slurm is then the queue; README \"Running jobs on a Slurm cluster\").")
@click.option("--slurm-partition", metavar="NAME", default=None, envvar="BENCHD_SLURM_PARTITION",
              help="--executor slurm: sbatch --partition [default: Slurm's default].")
@click.option("--slurm-account", metavar="NAME", default=None, envvar="BENCHD_SLURM_ACCOUNT",
              help="--executor slurm: sbatch --account.")
@click.option("--slurm-time-limit", metavar="TIME", default=None, callback=_slurm_time,
              envvar="BENCHD_SLURM_TIME_LIMIT",
              help="--executor slurm: sbatch --time (minutes, HH:MM:SS or D-HH:MM:SS); a job "
                   "over it ends failed with the reason TIMEOUT.")
@click.option("--slurm-extra", metavar="ARGS", default=None, callback=_slurm_extra,
              envvar="BENCHD_SLURM_EXTRA",
              help="--executor slurm: more sbatch options, shell-quoted (e.g. "
                   "'--constraint=avx512 --qos=bench').")
@click.option("--slurm-probe-timeout", metavar="S", type=click.FloatRange(min=1.0),
              default=60.0, show_default=True, envvar="BENCHD_SLURM_PROBE_TIMEOUT",
              help="--executor slurm: how long the start-up probe job may take to show that "
                   "the nodes share the root.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True, envvar="BENCHD_LOG_LEVEL",
              help="debug also logs every HTTP request.")
def main(root: Path, socket_path: Path | None, socket_mode: int, grace: float,
         client_timeout: float, admin_group: str | None, on_stop: str,
         orchestrator: list[str] | None, notify_config: Path, notify_allow_hosts: str | None,
         notify_retry_base: float, notify_give_up: float, keep_days: float | None,
         keep_runs: int | None, max_results_size: int | None, keep_job_days: float | None,
         archive_after: float | None, min_free: float, slots: int,
         cpu_list: list[int] | None, job_memory_max: int | None, max_queued_per_user: int,
         executor: str, slurm_partition: str | None, slurm_account: str | None,
         slurm_time_limit: str | None, slurm_extra: tuple[str, ...],
         slurm_probe_timeout: float, log_level: str) -> None:
    """Run the benchd job daemon: jobs queued for --slots slots, HTTP/1.1 + JSON on a Unix
    socket (see README "API"), systemd Type=notify with watchdog and socket activation.

    Exit status: 0 clean stop, 1 could not start or crashed, 2 usage error.
    """
    setup_logging(log_level)
    from benchd.retention.policy import Policy
    from benchd.server import ServerConfig, StartupError, serve

    root = root.resolve()
    slurm = None
    if executor == "slurm":   # the Slurm executor's module only where it is used
        from benchd.executors.slurm import SlurmSettings
        slurm = SlurmSettings(partition=slurm_partition, account=slurm_account,
                              time_limit=slurm_time_limit, extra=slurm_extra,
                              probe_timeout=slurm_probe_timeout)
    cfg = ServerConfig(root=root, socket_path=(socket_path or local_socket(root)).absolute(),
                       socket_mode=socket_mode, grace=grace, admin_group=admin_group,
                       on_stop=on_stop, orchestrator=orchestrator,
                       access_log=log_level == "debug", client_timeout=client_timeout,
                       notify_config=notify_config,
                       notify_allow_hosts=_hosts(notify_allow_hosts),
                       notify_retry_base=notify_retry_base, notify_give_up=notify_give_up,
                       retention=Policy(keep_days=keep_days, keep_runs=keep_runs,
                                        max_size=max_results_size, keep_job_days=keep_job_days,
                                        archive_after=archive_after, min_free=min_free / 100),
                       slots=slots, max_queued_per_user=max_queued_per_user,
                       cpus=cpu_list, job_memory_max=job_memory_max, executor=executor,
                       slurm=slurm)
    try:
        asyncio.run(serve(cfg))
    except StartupError as e:
        log.error("cannot start: %s", e)
        sys.exit(1)
    except Exception:
        log.exception("benchd crashed")
        sys.exit(1)


if __name__ == "__main__":
    main()

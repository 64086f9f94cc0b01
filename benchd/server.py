"""The daemon's life: one benchd per root (flock), the listening socket (socket-activated or
its own), reconcile, serve, and a graceful stop on SIGTERM/SIGINT.

Start-up order matters: lock the root, get the socket (clients that connect now just wait in
the backlog), reconcile jobs, start serving, and only then READY=1.
"""
from __future__ import annotations

import asyncio
import errno
import fcntl
import grp
import logging
import os
import signal
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from benchd.app import Context, make_app
from benchd.defaults import DEFAULT_CLIENT_TIMEOUT_S
from benchd.httpserver import JsonErrorAppRunner
from benchd.notify import Notifier, on_change_status, status_text
from pipeline.lockprobe import lock_holders, lock_is_held, lock_is_held_by_us
from benchd.retention.policy import Policy

if TYPE_CHECKING:
    from benchd.executors.local import LocalExecutor
    from benchd.executors.slurm import SlurmSettings
    from benchd.jobs import JobManager
    from benchd.notifications.config import NotifyConfig

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3
SOCKET_DIR_MODE = 0o750     # service user + its group (the group that may use benchd)
LOCK_DIR = "lock"           # <root>/run/lock: benchd's user only, so nobody else can flock
LOCK_DIR_MODE = 0o700
LOCK_FILE = "benchd.lock"
SHUTDOWN_TIMEOUT_S = 2.0    # open streams get this long to finish once the daemon stops
STOP_SLACK_S = 10.0         # a stop that cancels asks systemd for grace + margin + this
_SUN_PATH_MAX = 107         # sizeof(sockaddr_un.sun_path) - 1 on Linux


class StartupError(Exception):
    """benchd cannot start; the message says why and what to do (printed, exit status 1)."""


@dataclass(frozen=True)
class ServerConfig:
    root: Path
    socket_path: Path
    socket_mode: int = 0o660
    grace: float = 10.0
    admin_group: str | None = None
    on_stop: str = "leave"              # "leave" | "cancel" the running job on SIGTERM
    orchestrator: list[str] | None = None
    access_log: bool = False
    client_timeout: float = DEFAULT_CLIENT_TIMEOUT_S
    notify_config: Path | None = None       # notification settings (TOML); None = none
    notify_allow_hosts: frozenset[str] | None = None
    notify_retry_base: float = 5.0           # seconds before the first retry
    notify_give_up: float = 24 * 3600.0      # dead-letter a delivery this long after its event

    retention: Policy = field(default_factory=Policy)
    slots: int = 1                           # jobs that may run at once (the rest queue)
    max_queued_per_user: int = 50            # waiting jobs per user before 429 queue_full
    cpus: list[int] | None = None            # CPUs jobs may use (None: cpusets.default_cpus)
    job_memory_max: int | None = None        # bytes: default and ceiling of memory_max
    executor: str = "local"                  # "local" | "slurm" (benchd.executors.slurm)
    slurm: SlurmSettings | None = None       # --slurm-* options (executor "slurm")


def _make_private_dir(path: Path) -> None:
    """Create `path` SOCKET_DIR_MODE (not enterable by others) if missing; an existing
    directory is the admin's choice and left as it is."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, SOCKET_DIR_MODE)


def _make_owner_only_dir(path: Path) -> None:
    """`path` as a directory only our user may enter (LOCK_DIR_MODE): made if missing, its
    mode tightened if looser. Refused if it is a symlink or another user's."""
    try:
        path.mkdir(mode=LOCK_DIR_MODE)
    except FileExistsError:
        pass
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise StartupError(f"{path} exists and is not a directory; remove it")
    if st.st_uid != os.geteuid():
        raise StartupError(f"{path} belongs to uid {st.st_uid}, not to benchd's user "
                           f"(uid {os.geteuid()}); remove it or chown it")
    if stat.S_IMODE(st.st_mode) != LOCK_DIR_MODE:
        os.chmod(path, LOCK_DIR_MODE)


def lock_root(root: Path) -> int:
    """Hold <root>/run/lock/benchd.lock for the daemon's life: two daemons on one root would
    both reconcile and spawn jobs. Returns the fd (closing it releases the lock).

    Only benchd's user may open the lock (0600, in a 0700 directory): anyone who can open a
    file can flock it, and a group member holding it would stop benchd from ever restarting.
    The file an older benchd used (<root>/run/benchd.lock, 0640) is not used any more, since
    a group member may have held an fd on it since then; it is removed unless a process of
    ours still holds it (an older benchd still running on this root)."""
    run = root / "run"
    path = run / LOCK_DIR / LOCK_FILE
    try:
        _make_private_dir(run)  # it also holds the socket by default
        _make_owner_only_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        raise StartupError(f"cannot create the root lock {path}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StartupError(f"another benchd is already running on root {root}: "
                           f"{_holders_text(path)} holds {path}; stop it first") from None
    try:
        _retire_legacy_lock(root, run / LOCK_FILE)
    except BaseException:
        os.close(fd)
        raise
    os.fchmod(fd, 0o600)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # for people; holders come from /proc/locks
    return fd


def _holders_text(path: Path) -> str:
    """Who holds the lock on `path`, from /proc/locks (never the pid written in the file)."""
    try:
        holders = lock_holders(path)
    except OSError:
        holders = []
    return ", ".join(h.describe() for h in holders) or "a process not listed in /proc/locks"


def _retire_legacy_lock(root: Path, legacy: Path) -> None:
    """Remove the lock file an older benchd used, unless a process of ours (an older benchd
    still running) holds it. A holder of another user is a group member who opened it while
    it was group-readable: named in a warning, and no longer in anybody's way."""
    if not os.path.lexists(legacy):
        return
    try:
        if lock_is_held_by_us(legacy):
            raise StartupError(f"an older benchd is still running on root {root}: "
                               f"{_holders_text(legacy)} holds {legacy}; stop it first")
        if lock_is_held(legacy):
            log.warning("ignoring %s, the lock file of an older benchd: %s holds it", legacy,
                        _holders_text(legacy))
        legacy.unlink(missing_ok=True)
    except OSError as e:
        log.warning("cannot remove %s, the lock file of an older benchd: %s", legacy, e)


def activated_socket(env: Mapping[str, str] | None = None) -> socket.socket | None:
    """The listener systemd passed as fd 3 (LISTEN_FDS, for our pid only), or None."""
    env = os.environ if env is None else env
    fds, pid = env.get("LISTEN_FDS"), env.get("LISTEN_PID")
    if not fds:
        return None
    if pid != str(os.getpid()):
        log.warning("ignoring LISTEN_FDS=%s meant for pid %s (we are %d)", fds, pid, os.getpid())
        return None
    if env is os.environ:  # our children must not think the fds are theirs
        for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)
    try:
        count = int(fds)
    except ValueError:
        raise StartupError(f"LISTEN_FDS={fds!r} is not a number") from None
    if count < 1:
        return None
    if count > 1:
        log.warning("%d sockets passed; using the first (fd %d)", count, SD_LISTEN_FDS_START)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise StartupError(f"the socket passed as fd {SD_LISTEN_FDS_START} is not a Unix "
                           "stream socket (ListenStream= in benchd.socket)")
    os.set_inheritable(sock.fileno(), False)
    sock.setblocking(False)
    return sock


def _remove_stale(path: Path) -> None:
    """A socket file nobody listens on (left by a crashed benchd) is removed; a live one, or
    anything that is not a socket, is refused."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise StartupError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        log.warning("removing stale socket %s (nothing listens on it)", path)
        path.unlink(missing_ok=True)
        return
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno == errno.EAGAIN:  # backlog full: somebody is definitely listening
            raise StartupError(f"a daemon is already listening on {path}") from None
        raise StartupError(f"cannot check existing socket {path}: {e}") from None
    finally:
        probe.close()
    raise StartupError(f"a daemon is already listening on {path}; use another --socket "
                       "or stop it first")


def bind_socket(path: Path, mode: int) -> socket.socket:
    """Our own listener at `path` with `mode`, in a directory created 0750 if missing."""
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise StartupError(f"--socket {path} is longer than the {_SUN_PATH_MAX} bytes a Unix "
                           "socket path may have; choose a shorter path")
    _make_private_dir(path.parent)
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~mode)  # never world-connectable, not even for an instant
    try:
        sock.bind(str(path))
    except OSError as e:
        sock.close()
        raise StartupError(f"cannot bind {path}: {e.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    sock.listen(socket.SOMAXCONN)  # a Unix socket refuses (EAGAIN) once the backlog is full
    sock.setblocking(False)
    return sock


def _admin_gid(name: str | None) -> int | None:
    if name is None:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise StartupError(f"--admin-group: no group named {name!r}") from None


def version() -> str:
    try:
        return metadata.version("benchd")
    except metadata.PackageNotFoundError:
        return "0+unknown"


async def serve(cfg: ServerConfig) -> None:
    """Run the daemon until SIGTERM/SIGINT. Raises StartupError before READY if it cannot."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    admin_gid = _admin_gid(cfg.admin_group)  # option errors before anything is created
    notify_cfg = _notify_config(cfg)
    lock_fd = lock_root(cfg.root)
    try:
        notifier = Notifier()
        sock = activated_socket()
        own_socket = sock is None
        if sock is None:
            sock = bind_socket(cfg.socket_path, cfg.socket_mode)
        socket_name = sock.getsockname() or str(cfg.socket_path)
        socket_ino = os.stat(socket_name).st_ino if own_socket else None
        try:
            await _run(cfg, sock, socket_name, own_socket, admin_gid, notify_cfg, notifier, stop)
        finally:
            await notifier.stop_watchdog()
            if own_socket:
                _unlink_if_ours(Path(socket_name), socket_ino)
            sock.close()
    finally:
        os.close(lock_fd)
    log.info("stopped")


async def _remove_discarded(results_dir: Path) -> None:
    """Finish deleting staged runs whose discard a crash interrupted (off the loop: a big run
    is many files)."""
    from pipeline.staged import remove_discarded
    try:
        n = await asyncio.to_thread(remove_discarded, results_dir)
    except OSError as e:
        log.warning("cannot tidy discarded runs in %s: %s", results_dir, e)
    else:
        if n:
            log.info("removed %d discarded run(s) a crash left in %s/.staging", n, results_dir)


def _notify_config(cfg: ServerConfig) -> NotifyConfig:
    from benchd.notifications.config import NotifyConfigError, load
    try:
        return load(cfg.notify_config, cfg.notify_allow_hosts)
    except NotifyConfigError as e:
        raise StartupError(str(e)) from None


def _executor(cfg: ServerConfig) -> "LocalExecutor":
    """The local executor, with a cgroup per job when systemd delegated a subtree to us
    (benchd.cgroups; README "Each job in its own cgroup"), else process groups only."""
    from benchd import cgroups
    from benchd.executors.local import LocalExecutor
    from benchd.store import Store
    root = cgroups.delegated_root()
    if root is not None:
        try:
            enabled = cgroups.enter_daemon_leaf(root)
        except OSError as e:
            log.warning("cannot use the delegated cgroup %s (%s): jobs run in process "
                        "groups only", root, e)
            root = None
        else:
            log.info("a cgroup per job under %s (controllers for limits: %s)", root,
                     ", ".join(enabled) or "none: CPUs by affinity, memory by rlimit")
    return LocalExecutor(cfg.root, Store(cfg.root), cfg.grace, cgroup_root=root)


async def _run(cfg: ServerConfig, sock: socket.socket, socket_name: str, own_socket: bool,
               admin_gid: int | None, notify_cfg: NotifyConfig, notifier: Notifier,
               stop: asyncio.Event) -> None:
    """Reconcile, serve until `stop`, then stop serving and close the job layer."""
    from benchd.jobs import CANCEL_MARGIN_S, JobManager  # the job layer (it spawns things)
    from benchd.notifications.service import Notifications

    from benchd.retention.service import Retention

    notifications = Notifications(cfg.root, notify_cfg, retry_base_s=cfg.notify_retry_base,
                                  give_up_s=cfg.notify_give_up)
    if cfg.executor == "slurm":
        manager = await _slurm_manager(cfg, admin_gid, notifier, notifications)
    else:
        manager = JobManager(cfg.root, grace=cfg.grace, orchestrator=cfg.orchestrator,
                             admin_gid=admin_gid, on_change=on_change_status(notifier),
                             on_transition=notifications.on_transition, slots=cfg.slots,
                             max_queued_per_user=cfg.max_queued_per_user, cpus=cfg.cpus,
                             job_memory_max=cfg.job_memory_max, executor=_executor(cfg))
    retention = Retention(cfg.root, cfg.retention, manager)
    manager.make_space = retention.make_space
    runner: JsonErrorAppRunner | None = None
    closed = False
    try:
        notifier.status("reconciling jobs")
        for line in await manager.reconcile():
            log.info("reconcile: %s", line)
        start_watching = getattr(manager.executor, "start_watching", None)
        if start_watching is not None:   # Slurm: one squeue for all jobs every few seconds
            start_watching()
        await notifications.start()
        await retention.start()
        ctx = Context(manager=manager, root=cfg.root, socket_path=socket_name,
                      version=version(), grace=cfg.grace, client_timeout=cfg.client_timeout,
                      notifications=notifications, retention=retention)
        runner = JsonErrorAppRunner(make_app(ctx), handle_signals=False,
                               shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                               keepalive_timeout=cfg.client_timeout,
                               access_log=logging.getLogger("aiohttp.access")
                               if cfg.access_log else None)
        await runner.setup()
        site = web.SockSite(runner, sock, backlog=socket.SOMAXCONN)  # aiohttp re-listens
        await site.start()
        active = manager.active()
        notifier.ready(status_text(active, reattached=active is not None))
        notifier.start_watchdog()
        tidy = asyncio.get_running_loop().create_task(_remove_discarded(ctx.results_dir))
        log.info("benchd %s ready on %s (root %s, %s)", ctx.version, socket_name, cfg.root,
                 "own socket" if own_socket else "socket-activated")
        await stop.wait()
        if not tidy.done():
            log.info("still deleting discarded runs left by a crash; stopping waits for it")

        active = manager.active()
        if active is None:
            what = "no job running"
        elif cfg.on_stop == "cancel":
            what = f"cancelling job {active.job_id}"
        else:
            what = f"job {active.job_id} keeps running; the next benchd reattaches it"
        cancelling = active is not None and cfg.on_stop == "cancel"
        needs_s = cfg.grace + CANCEL_MARGIN_S + STOP_SLACK_S if cancelling else None
        notifier.stopping(f"stopping: {what}", needs_s=needs_s)
        log.info("stopping: %s", what)
        await site.stop()  # no new connections; socket-activated ones queue for the next us
        closed = True
        await manager.close(cancel_running=cfg.on_stop == "cancel")
    finally:
        if not closed:
            await manager.close(cancel_running=False)
        if runner is not None:
            await runner.cleanup()
        await notifications.stop()
        await retention.stop()


async def _slurm_manager(cfg: ServerConfig, admin_gid: int | None, notifier: Notifier,
                         notifications: object) -> JobManager:
    """The job layer with Slurm as the queue, once the nodes are shown to share the root
    (a probe job writes into logs/ and results/); StartupError saying why not."""
    from benchd.executors.slurm import SlurmError, SlurmExecutor, SlurmSettings
    from benchd.slurmjobs import SlurmJobManager
    from benchd.store import Store

    settings = cfg.slurm or SlurmSettings()
    executor = SlurmExecutor(cfg.root.resolve(), Store(cfg.root.resolve()), cfg.grace,
                             settings)
    notifier.status("checking that the Slurm nodes share the root")
    if not await executor.ping():
        raise StartupError(f"--executor slurm: slurmctld does not answer "
                           f"({executor.last_error}); benchd checks at start-up that the "
                           f"nodes share its root, which needs it (SLURM_CONF="
                           f"{os.environ.get('SLURM_CONF', 'default')})")
    try:
        log.info("%s", await executor.check_shared_fs())
    except SlurmError as e:
        raise StartupError(f"--executor slurm: {e}") from None
    return SlurmJobManager(cfg.root, executor=executor, grace=cfg.grace,
                           orchestrator=cfg.orchestrator, admin_gid=admin_gid,
                           on_change=on_change_status(notifier),
                           on_transition=notifications.on_transition,  # type: ignore[attr-defined]
                           max_queued_per_user=cfg.max_queued_per_user,
                           job_memory_max=cfg.job_memory_max)


def _unlink_if_ours(path: Path, ino: int | None) -> None:
    """Remove our socket file, unless someone has since replaced it with theirs."""
    try:
        if path.lstat().st_ino == ino:
            path.unlink()
    except FileNotFoundError:
        pass

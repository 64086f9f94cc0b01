"""Where a run's files live: claiming a unique run id, staging, checkpoints, atomic publish.

Layout (README "Results layout"):
  results/<run_id>/manifest.json, <experiment>/<library>.json, <experiment>/summary.md
  results/.staging/<run_id>/   the same while running; published by one rename
run_id is the UTC start time `YYYY-MM-DD_HH-MM-SS`; a second run starting in the same second
gets `_02`, `_03`, ... `_99` (two digits so that name order stays start order). The id is
claimed by mkdir of its staging directory (atomic) after checking no published run has it, and
publishing renames with RENAME_NOREPLACE, so an existing run is never overwritten.
An experiment is built in `<experiment>.partial/` and renamed into place before the manifest
records it (the checkpoint): a crash leaves either a recorded experiment or a partial to redo.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from pipeline import schema
from pipeline.atomicio import fsync_dir, write_bytes_atomic
from pipeline.lockprobe import lock_is_held_by_us
from pipeline.smallfile import MiB, read_small_file

log = logging.getLogger(__name__)

STAGING = ".staging"
WORK = ".work"          # worker scratch (outputs.npy), inside the staging run; never published
LOCK = ".run.lock"      # flock held by the orchestrator working on a staged run (0600)
LEGACY_LOCK = ".lock"   # what older versions locked (group-readable: no longer trusted)
MANIFEST = "manifest.json"
SUMMARY = "summary.md"
# Results files (manifest, <library>.json, summary.md) are read back with at most this many
# bytes each, never through a symlink, regular files only (pipeline.smallfile): ours are a
# few KB (WORST_CASES worst cases per library), so 16 MiB is a margin of thousands, and a
# huge or FIFO file dropped into results/ cannot exhaust memory or hang the reader (benchd).
MAX_FILE_BYTES = 16 * MiB
PARTIAL_SUFFIX = ".partial"
RUN_ID_RE = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(?:_\d{2})?$")
LEGACY_RUN_ID_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_SUFFIX = 99
LOCK_PATIENCE_S = 0.1   # how long a lock held for an instant (a probe) is waited out


class ResultsDirError(Exception):
    """The results directory cannot be used (exit code 2 before any work)."""


class ResumeError(Exception):
    """`--resume <run_id>` cannot continue that run; the message says why."""


def check_results_dir(results_dir: Path) -> Path:
    """Create results_dir (and its staging area) if needed and prove it is writable."""
    results_dir = Path(results_dir).absolute()
    try:
        (results_dir / STAGING).mkdir(parents=True, exist_ok=True)
        probe = results_dir / STAGING / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ResultsDirError(f"results dir {str(results_dir)!r} is not writable: "
                              f"{e.strerror or e}") from e
    return results_dir


_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def rename_noreplace(src: Path, dst: Path) -> None:
    """rename(2) that fails with FileExistsError instead of replacing `dst`."""
    fn = getattr(_libc, "renameat2", None)
    if fn is not None:
        rc = fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err), str(src), None, str(dst))
    # filesystem without RENAME_NOREPLACE: check then rename (a directory cannot be replaced
    # by rename(2) unless empty, and our run directories never are)
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "exists", str(dst))
    os.rename(src, dst)


def run_id_for(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y-%m-%d_%H-%M-%S")


class StagedRun:
    """A run being built under results/.staging/<run_id>/, locked by this process."""

    def __init__(self, results_dir: Path, run_id: str, lock_fd: int) -> None:
        self.results_dir = results_dir
        self.run_id = run_id
        self.path = results_dir / STAGING / run_id
        self._lock_fd = lock_fd

    @property
    def final_path(self) -> Path:
        return self.results_dir / self.run_id

    def work_dir(self, experiment: str, library: str) -> Path:
        d = self.path / WORK / experiment / library
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d

    def write_manifest(self, manifest: schema.Manifest) -> None:
        write_bytes_atomic(self.path / MANIFEST, schema.encode(manifest))

    def begin_experiment(self, experiment: str) -> Path:
        """A fresh directory to build one experiment's files in."""
        d = self.path / (experiment + PARTIAL_SUFFIX)
        if d.exists():
            shutil.rmtree(d)
        d.mkdir()
        return d

    def commit_experiment(self, experiment: str) -> Path:
        """Move the finished partial into place (the caller then records it in the manifest)."""
        src = self.path / (experiment + PARTIAL_SUFFIX)
        dst = self.path / experiment
        if dst.exists():          # left by a run killed between this rename and its manifest
            shutil.rmtree(dst)
        for f in src.iterdir():
            _fsync_file(f)
        os.rename(src, dst)
        fsync_dir(self.path)
        shutil.rmtree(self.path / WORK / experiment, ignore_errors=True)
        return dst

    def publish(self) -> Path:
        """Drop scratch files and rename the run into results/<run_id> (never replacing)."""
        shutil.rmtree(self.path / WORK, ignore_errors=True)
        for p in self.path.iterdir():
            if p.name.endswith(PARTIAL_SUFFIX):
                shutil.rmtree(p)
        fsync_dir(self.path)
        # the lock file goes only after the rename: while it is in staging the run stays
        # locked (a discard in benchd takes this lock; one made afresh would not exclude us)
        rename_noreplace(self.path, self.final_path)
        try:    # published: what follows is tidying, and cannot make the run unpublished
            fsync_dir(self.results_dir / STAGING)
            fsync_dir(self.results_dir)
            (self.final_path / LOCK).unlink(missing_ok=True)
            (self.final_path / LEGACY_LOCK).unlink(missing_ok=True)
            fsync_dir(self.final_path)
        except OSError as e:
            log.warning("run %s is published; tidying after the rename failed: %s",
                        self.run_id, e)
        return self.final_path

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def _fsync_file(path: Path) -> None:
    if path.is_file():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def lock_run(run_path: Path) -> int:
    """flock run_path/.run.lock (created if missing) and return its fd. BlockingIOError:
    someone holds it; FileNotFoundError: the run directory is gone, or was moved away
    (discarded) between our open and our lock, so what we locked is no longer this run's lock.

    The file is 0600: only the user that runs orchestrators (benchd's) may open it, since
    anyone who can open a file can flock it, and results/ is readable by the whole group.
    An older version's group-readable `.lock` still counts while a process of ours holds it
    (an orchestrator started before an upgrade); otherwise it is removed."""
    _refuse_if_legacy_lock_held(run_path)   # before making ours: an older orchestrator
    fd = os.open(run_path / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        _flock_patiently(fd)
        if not os.path.samestat(os.fstat(fd), os.stat(run_path / LOCK)):
            raise FileNotFoundError(errno.ENOENT, "run moved away while locking", str(run_path))
        _retire_legacy_lock(run_path)
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _refuse_if_legacy_lock_held(run_path: Path) -> None:
    """BlockingIOError while a process of ours (an orchestrator started before an upgrade)
    holds the run's `.lock` of an older version (a probe's instant is waited out, as in
    _flock_patiently)."""
    legacy = run_path / LEGACY_LOCK
    deadline = time.monotonic() + LOCK_PATIENCE_S
    while os.path.lexists(legacy) and lock_is_held_by_us(legacy):
        if time.monotonic() >= deadline:
            raise BlockingIOError(errno.EWOULDBLOCK, "an orchestrator holds the run's old "
                                  "lock", str(legacy))
        time.sleep(0.002)


def _retire_legacy_lock(run_path: Path) -> None:
    """Remove the run's `.lock` of an older version unless a process of ours holds it
    (BlockingIOError); another user's flock on it is not an orchestrator at work."""
    _refuse_if_legacy_lock_held(run_path)
    (run_path / LEGACY_LOCK).unlink(missing_ok=True)


def _flock_patiently(fd: int) -> None:
    """A non-blocking flock, retried for up to LOCK_PATIENCE_S: a listing probes whether a
    run is in use by taking its lock for an instant (pipeline.lockprobe), which must not read
    as an orchestrator holding it. A real holder holds it for the whole run."""
    deadline = time.monotonic() + LOCK_PATIENCE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.002)


def claim_run(results_dir: Path, now: datetime | None = None) -> StagedRun:
    """Reserve a new, unique run id for a run starting `now` and lock its staging directory."""
    base = run_id_for(now or datetime.now(timezone.utc))
    staging = results_dir / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    for i in range(1, MAX_SUFFIX + 1):
        run_id = base if i == 1 else f"{base}_{i:02d}"
        if os.path.lexists(results_dir / run_id):
            continue
        try:
            (staging / run_id).mkdir()
        except FileExistsError:
            continue
        if os.path.lexists(results_dir / run_id):   # published between our check and mkdir
            (staging / run_id).rmdir()
            continue
        fsync_dir(staging)
        try:
            return StagedRun(results_dir, run_id, lock_run(staging / run_id))
        except (BlockingIOError, FileNotFoundError):
            if not staging.is_dir():
                raise ResultsDirError(f"{staging} disappeared while claiming run {run_id}") \
                    from None
            continue    # discarded (benchd) the instant after we made it: take the next id
    raise ResultsDirError(f"more than {MAX_SUFFIX} runs started in second {base} under "
                          f"{results_dir}")


def read_manifest(path: Path) -> schema.Manifest:
    return msgspec.json.decode(read_small_file(path, MAX_FILE_BYTES), type=schema.Manifest)


def open_for_resume(results_dir: Path, run_id: str) -> tuple[StagedRun, schema.Manifest]:
    """Lock a staged, unpublished run so its missing experiments can be run."""
    if not RUN_ID_RE.fullmatch(run_id or ""):
        raise ResumeError(f"--resume {run_id!r}: not a run id (expected YYYY-MM-DD_HH-MM-SS"
                          f"[_NN])")
    if os.path.lexists(results_dir / run_id):
        raise ResumeError(f"--resume {run_id!r}: that run is already published in "
                          f"{results_dir / run_id}")
    path = results_dir / STAGING / run_id
    if not path.is_dir():
        raise ResumeError(f"--resume {run_id!r}: no staged run of that id under "
                          f"{results_dir / STAGING}")
    try:
        manifest = read_manifest(path / MANIFEST)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ResumeError(f"--resume {run_id!r}: staged manifest unreadable: {e}") from e
    try:
        fd = lock_run(path)
    except BlockingIOError:
        raise ResumeError(f"--resume {run_id!r}: another orchestrator is still working on "
                          f"it") from None
    except FileNotFoundError:
        raise ResumeError(f"--resume {run_id!r}: that staged run was discarded a moment "
                          f"ago") from None
    staged = StagedRun(results_dir, run_id, fd)
    for p in path.iterdir():    # experiments not recorded in the manifest are redone
        if p.is_dir() and not p.name.startswith(".") and p.name not in manifest.experiments:
            shutil.rmtree(p)
    return staged, manifest

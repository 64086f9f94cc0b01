"""Job files on disk: atomic writes of records and supervisor side files, and loading the
history (damaged files moved aside). Every job file is read through
pipeline.smallfile.read_small_file (bounded, no symlinks, no FIFOs). The layout is in
benchd.layout."""
from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from pathlib import Path
from typing import TypeVar

import msgspec

from benchd.layout import JobPaths, utc_from_timestamp, utc_now
from benchd.schema import JOB_ID_RE, CancelOrder, ExitRecord, JobRecord, SupervisorInfo
from benchd.states import FINAL
from pipeline.atomicio import fsync_dir, write_bytes_atomic
from pipeline.smallfile import MiB, UnreadableFile, describe_mode, read_small_file

log = logging.getLogger(__name__)

__all__ = ["JobPaths", "Store", "utc_from_timestamp", "utc_now"]
_T = TypeVar("_T")

# Every file under logs/jobs/ is read through read_small_file with this cap. Records are a
# few KB; at worst ~150 KB (six progress strings of at most benchd.jobs.PROGRESS_FIELD_MAX
# characters, 6 bytes each when JSON-escaped, plus a config from a body of at most 64 KiB).
# 1 MiB leaves a wide margin over that, yet reading one is instant. Larger means damaged.
STATE_MAX_BYTES = 1 * MiB


class Store:
    """Reads and writes a root's job files. Creates logs/ and logs/jobs/ on first use."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.logs_dir = self.root / "logs"
        self.jobs_dir = self.logs_dir / "jobs"
        self.corrupt_dir = self.jobs_dir / "corrupt"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        # damaged records the disk (full) would not let us move aside: job id -> why; moved
        # before anything is saved in their place, so a rebuilt record never overwrites one
        self._aside_pending: dict[str, str] = {}

    def paths(self, job_id: str) -> JobPaths:
        return JobPaths(self.root, job_id)

    # records -------------------------------------------------------------------------
    def save(self, rec: JobRecord) -> None:
        """Write the record atomically and durably. OSError (e.g. ENOSPC): nothing changed."""
        path = self.paths(rec.job_id).record
        why = self._aside_pending.get(rec.job_id)
        if why is not None:  # the damaged file first: it must not be replaced unseen
            self._move_aside(path, why)
            del self._aside_pending[rec.job_id]
        self._write(path, msgspec.json.encode(rec))

    def trash_jobs(self, job_ids: list[str]) -> list[str]:
        """Move each job's record, log and side files into logs/.trash/<id>.<rand>/ in one
        rename per file (record first: without it the job is gone from the history), then
        delete them; emptied at the next start if a crash interrupts. Returns the ids moved."""
        trash = self.logs_dir / ".trash"
        trash.mkdir(mode=0o700, exist_ok=True)
        moved = []
        for job_id in job_ids:
            p = self.paths(job_id)
            dst = trash / f"{job_id}.{os.urandom(4).hex()}"
            dst.mkdir()
            try:
                os.rename(p.record, dst / p.record.name)
            except OSError as e:
                log.warning("retention: cannot delete job %s: %s", job_id, e.strerror)
                dst.rmdir()
                continue
            for f in (p.log, *p.aux()):
                try:
                    os.rename(f, dst / f.name)
                except FileNotFoundError:
                    pass
            moved.append((job_id, dst))
        if moved:
            fsync_dir(self.jobs_dir)
        for _, dst in moved:
            shutil.rmtree(dst, ignore_errors=True)
        return [job_id for job_id, _ in moved]

    def load_all(self) -> tuple[list[JobRecord], list[str]]:
        """Every record on disk, oldest first, plus one warning per file moved aside: a record
        malformed, empty, truncated or naming another job, and any job file (record or side
        file) that is not a regular file of at most STATE_MAX_BYTES (a directory, a symlink,
        a FIFO, a huge file)."""
        records, warnings, _ = self.load_with_orphans()
        return records, warnings

    def load_with_orphans(self) -> tuple[list[JobRecord], list[str], list[str]]:
        """load_all's records and warnings, plus the ids of jobs whose supervisor left files
        (pid, exit, lock, cancel) but whose record is gone (moved aside as damaged, or
        deleted): their outcome must not be lost with the record. One directory scan."""
        records: list[JobRecord] = []
        warnings: list[str] = []
        aux: list[tuple[str, str]] = []
        decoder = msgspec.json.Decoder(JobRecord)
        with os.scandir(self.jobs_dir) as it:
            entries = [(e.name, e.path, e.is_file(follow_symlinks=False)) for e in it]
        for name, path, regular in entries:
            stem, dot, suffix = name.partition(".")
            if not JOB_ID_RE.fullmatch(stem) or not dot:
                continue
            if not regular:  # a directory, symlink, FIFO... where a job file belongs
                why = _what_is(path)
                if why is not None:
                    warnings.append(self._aside_or_keep(Path(path), why))
                continue
            if suffix != "json":
                aux.append((stem, path))
                continue
            try:
                rec = decoder.decode(read_small_file(path, STATE_MAX_BYTES))
                if rec.job_id != stem:
                    raise ValueError(f"record names job {rec.job_id!r}")
            except FileNotFoundError:
                continue
            except UnreadableFile as e:
                warnings.append(self._aside_or_keep(Path(path), e.why))
                continue
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as e:
                warnings.append(self._aside_or_keep(Path(path), str(e)))
                continue
            records.append(rec)
        records.sort(key=lambda r: (r.created_at, r.job_id))
        final = {r.job_id for r in records if r.status in FINAL}
        known = {r.job_id for r in records}
        for stem, path in aux:
            if stem in final:  # a finalized job's leftovers (benchd stopped before cleanup)
                self._unlink(Path(path))
        return records, warnings, sorted({stem for stem, _ in aux} - known)

    def _aside_or_keep(self, path: Path, why: str) -> str:
        """_move_aside at start-up, where a full disk must not stop benchd: a record that
        cannot be moved now is moved before its job's record is next written."""
        try:
            return self._move_aside(path, why)
        except OSError as err:
            if path.suffix == ".json":
                self._aside_pending[path.name.partition(".")[0]] = why
            what = "malformed job record" if path.suffix == ".json" else "damaged job file"
            return (f"{what} {path.name} ({why}) left in place: cannot move it to "
                    f"{self.corrupt_dir} ({err.strerror or err}); moved before its job's "
                    f"record is next written")

    def _move_aside(self, path: Path, why: str) -> str:
        """Keep a damaged job file for a person to look at, out of benchd's way; the warning
        (also logged) names it and why. Someone else moving it first is not an error.
        OSError (ENOSPC, ...): it stays in place."""
        self.corrupt_dir.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        dest = self.corrupt_dir / f"{path.name}.{stamp}"
        what = "malformed job record" if path.suffix == ".json" else "damaged job file"
        try:
            os.replace(path, dest)
        except FileNotFoundError:
            msg = f"{what} {path.name} ({why}) vanished before it could be moved aside"
        else:
            msg = f"{what} {path.name} moved to {dest} ({why})"
        log.warning("%s", msg)
        return msg

    def _read_struct(self, path: Path, typ: type[_T]) -> _T | None:
        """Decode `path` as `typ`; None when missing; malformed -> None with a warning; not a
        regular file of at most STATE_MAX_BYTES -> moved aside, None."""
        try:
            data = read_small_file(path, STATE_MAX_BYTES)
        except FileNotFoundError:
            return None
        except UnreadableFile as e:
            self._move_aside(path, e.why)
            return None
        try:
            return msgspec.json.decode(data, type=typ)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            log.warning("ignoring malformed %s: %s", path, e)
            return None

    def _write(self, path: Path, data: bytes, *, durable: bool = True) -> None:
        """write_bytes_atomic; a directory in the way (the rename cannot replace it, and
        nothing of ours is one) is moved aside first, so the job's outcome is not lost."""
        try:
            write_bytes_atomic(path, data, durable=durable)
        except IsADirectoryError:
            self._move_aside(path, "a directory")
            write_bytes_atomic(path, data, durable=durable)

    def _unlink(self, path: Path) -> None:
        """Remove a job file; one that cannot be unlinked (a directory) is moved aside."""
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            self._move_aside(path, "a directory")

    # supervisor side files -----------------------------------------------------------
    def read_exit(self, job_id: str) -> ExitRecord | None:
        return self._read_struct(self.paths(job_id).exit, ExitRecord)

    def write_exit(self, rec: ExitRecord) -> None:
        self._write(self.paths(rec.job_id).exit, msgspec.json.encode(rec))

    def read_info(self, job_id: str) -> SupervisorInfo | None:
        return self._read_struct(self.paths(job_id).info, SupervisorInfo)

    def read_cancel(self, job_id: str) -> CancelOrder | None:
        return self._read_struct(self.paths(job_id).cancel, CancelOrder)

    def write_cancel(self, job_id: str, order: CancelOrder) -> None:
        """Atomic (the supervisor never reads a torn order) but not fsynced: the order only
        matters while the job's processes live, and none of them outlive a machine crash.
        Skipping the two fsyncs keeps them off the cancel latency path."""
        self._write(self.paths(job_id).cancel, msgspec.json.encode(order), durable=False)

    def request_checkpoint(self, job_id: str) -> None:
        """The request file the orchestrator looks for at each experiment boundary
        (pipeline.checkpoint); not fsynced: it matters only while the job runs."""
        self._write(self.paths(job_id).checkpoint,
                    f"checkpoint requested at {utc_now()}\n".encode(), durable=False)

    def clear_requests(self, job_id: str) -> None:
        """Before a job's (next) start: an earlier segment's checkpoint request, stop order
        and exit record (a paused or preempted job's) are done with."""
        paths = self.paths(job_id)
        for p in (paths.checkpoint, paths.cancel, paths.exit):
            self._unlink(p)

    def remove_aux(self, job_id: str) -> None:
        """Drop a finalized job's supervisor files. Call only once its final record is durable
        on disk: until then the exit record (and cancel order) are the outcome's only copy."""
        for p in self.paths(job_id).aux():
            self._unlink(p)


def _what_is(path: str) -> str | None:
    """What a non-regular directory entry is ("a directory", ...); None once it is gone."""
    try:
        return describe_mode(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None

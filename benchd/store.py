"""Job files on disk: atomic writes of records and supervisor side files, and loading the
history (malformed records moved aside). The layout is in benchd.layout."""
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

log = logging.getLogger(__name__)

__all__ = ["JobPaths", "Store", "utc_from_timestamp", "utc_now"]
_T = TypeVar("_T")


def _read_struct(path: Path, typ: type[_T]) -> _T | None:
    """Decode `path` as `typ`; None when missing; malformed -> None with a warning."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return msgspec.json.decode(data, type=typ)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        log.warning("ignoring malformed %s: %s", path, e)
        return None


class Store:
    """Reads and writes a root's job files. Creates logs/ and logs/jobs/ on first use."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.logs_dir = self.root / "logs"
        self.jobs_dir = self.logs_dir / "jobs"
        self.corrupt_dir = self.jobs_dir / "corrupt"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)

    def paths(self, job_id: str) -> JobPaths:
        return JobPaths(self.root, job_id)

    # records -------------------------------------------------------------------------
    def save(self, rec: JobRecord) -> None:
        write_bytes_atomic(self.paths(rec.job_id).record, msgspec.json.encode(rec))

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
        """Every record on disk, oldest first, plus one warning per file moved aside (malformed,
        empty, truncated, or naming another job) and per stale auxiliary file removed."""
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
            entries = [(e.name, e.path) for e in it if e.is_file(follow_symlinks=False)]
        for name, path in entries:
            stem, dot, suffix = name.partition(".")
            if not JOB_ID_RE.fullmatch(stem) or not dot:
                continue
            if suffix != "json":
                aux.append((stem, path))
                continue
            try:
                with open(path, "rb") as f:
                    rec = decoder.decode(f.read())
                if rec.job_id != stem:
                    raise ValueError(f"record names job {rec.job_id!r}")
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as e:
                warnings.append(self._move_aside(Path(path), str(e)))
                continue
            records.append(rec)
        records.sort(key=lambda r: (r.created_at, r.job_id))
        final = {r.job_id for r in records if r.status in FINAL}
        known = {r.job_id for r in records}
        for stem, path in aux:
            if stem in final:  # a finalized job's leftovers (benchd stopped before cleanup)
                _unlink(Path(path))
        return records, warnings, sorted({stem for stem, _ in aux} - known)

    def _move_aside(self, path: Path, why: str) -> str:
        self.corrupt_dir.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        dest = self.corrupt_dir / f"{path.name}.{stamp}"
        os.replace(path, dest)
        msg = f"malformed job record {path.name} moved to {dest} ({why})"
        log.warning("%s", msg)
        return msg

    # supervisor side files -----------------------------------------------------------
    def read_exit(self, job_id: str) -> ExitRecord | None:
        return _read_struct(self.paths(job_id).exit, ExitRecord)

    def write_exit(self, rec: ExitRecord) -> None:
        write_bytes_atomic(self.paths(rec.job_id).exit, msgspec.json.encode(rec))

    def read_info(self, job_id: str) -> SupervisorInfo | None:
        return _read_struct(self.paths(job_id).info, SupervisorInfo)

    def read_cancel(self, job_id: str) -> CancelOrder | None:
        return _read_struct(self.paths(job_id).cancel, CancelOrder)

    def write_cancel(self, job_id: str, order: CancelOrder) -> None:
        """Atomic (the supervisor never reads a torn order) but not fsynced: the order only
        matters while the job's processes live, and none of them outlive a machine crash.
        Skipping the two fsyncs keeps them off the cancel latency path."""
        write_bytes_atomic(self.paths(job_id).cancel, msgspec.json.encode(order),
                           durable=False)

    def remove_aux(self, job_id: str) -> None:
        """Drop a finalized job's supervisor files (its record now holds the outcome)."""
        for p in self.paths(job_id).aux():
            _unlink(p)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


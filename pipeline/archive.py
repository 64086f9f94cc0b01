"""Archived runs: a published run compressed into results/.archive/<run_id>.tar.xz, with its
full RunDetail (tables, summaries, manifest) beside it as <run_id>.json, so the run stays
listed and readable without unpacking it. `restore` puts it back as it was.

xz comes from the standard library (lzma); zstd would need a third-party module for a file
that is written once and rarely read. Both steps are crash-safe: the archive is written to a
temporary name, fsynced and renamed, and its detail file written, before the run directory is
removed (by the caller, through the trash); a restore unpacks into a temporary directory and
renames it into place (never over an existing run) before the archive is removed.
"""
from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import msgspec

from pipeline import schema
from pipeline.atomicio import fsync_dir, write_bytes_atomic
from pipeline.results import MAX_FILE_BYTES, rename_noreplace
from pipeline.smallfile import UnreadableFile, read_small_file

ARCHIVE = ".archive"
SUFFIX = ".tar.xz"


def archive_dir(results_dir: Path) -> Path:
    return Path(results_dir) / ARCHIVE


def archive_path(results_dir: Path, run_id: str) -> Path:
    return archive_dir(results_dir) / f"{run_id}{SUFFIX}"


def detail_path(results_dir: Path, run_id: str) -> Path:
    return archive_dir(results_dir) / f"{run_id}.json"


def is_archived(results_dir: Path, run_id: str) -> bool:
    return archive_path(results_dir, run_id).is_file() and \
        detail_path(results_dir, run_id).is_file()


def archive_run(results_dir: Path, run_id: str, detail: schema.RunDetail) -> int:
    """Write the archive and its detail file (durably); returns the archive's size. The run
    directory is left for the caller to remove."""
    d = archive_dir(results_dir)
    d.mkdir(mode=0o750, exist_ok=True)
    final = archive_path(results_dir, run_id)
    tmp = d / f".{run_id}{SUFFIX}.{os.getpid()}.tmp"
    try:
        with tarfile.open(tmp, "w:xz") as tar:
            tar.add(Path(results_dir) / run_id, arcname=run_id)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    write_bytes_atomic(detail_path(results_dir, run_id), msgspec.json.encode(detail), 0o640)
    fsync_dir(d)
    return final.stat().st_size


def read_detail(results_dir: Path, run_id: str) -> schema.RunDetail | None:
    try:
        data = read_small_file(detail_path(results_dir, run_id), MAX_FILE_BYTES)
    except (OSError, UnreadableFile):
        return None
    try:
        return msgspec.json.decode(data, type=schema.RunDetail)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def restore_run(results_dir: Path, run_id: str) -> None:
    """Unpack the archive back to results/<run_id> (refused if that exists), then drop it."""
    results_dir = Path(results_dir)
    src = archive_path(results_dir, run_id)
    tmp = archive_dir(results_dir) / f".restore-{run_id}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o750)
    try:
        with tarfile.open(src, "r:xz") as tar:
            tar.extractall(tmp, filter="data")   # no links out, no absolute paths
        unpacked = tmp / run_id
        if not (unpacked / "manifest.json").is_file() and not any(unpacked.iterdir()):
            raise OSError(f"archive {src} holds no run {run_id}")
        rename_noreplace(unpacked, results_dir / run_id)
        fsync_dir(results_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    src.unlink(missing_ok=True)
    detail_path(results_dir, run_id).unlink(missing_ok=True)
    fsync_dir(archive_dir(results_dir))


def archived_ids(results_dir: Path) -> list[str]:
    d = archive_dir(results_dir)
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return []
    return sorted(n[:-len(SUFFIX)] for n in names
                  if n.endswith(SUFFIX) and not n.startswith("."))

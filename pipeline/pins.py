"""Pinned runs: results/.pins/<run_id>.json (schema.Pin). A pinned run is never pruned or
archived by any retention rule; the note says why it matters (shown in `benchctl results`).

Kept beside the runs, not inside them: a published run is never rewritten. A pin whose run is
gone is harmless (listing ignores it) and is removed with the next unpin or prune.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import msgspec

from pipeline import schema
from pipeline.atomicio import write_bytes_atomic

log = logging.getLogger(__name__)

PINS = ".pins"
MAX_NOTE = 200
MAX_PIN_BYTES = 64 * 1024


def pins_dir(results_dir: Path) -> Path:
    return Path(results_dir) / PINS


def read_pins(results_dir: Path) -> dict[str, schema.Pin]:
    """run id -> its pin; unreadable pin files are logged and count as pins (fail safe: a
    damaged pin must not make a run deletable)."""
    d = pins_dir(results_dir)
    out: dict[str, schema.Pin] = {}
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return out
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        run_id = name[:-len(".json")]
        try:
            fd = os.open(d / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                data = f.read(MAX_PIN_BYTES + 1)
            pin = msgspec.json.decode(data, type=schema.Pin)
            if pin.run_id != run_id:
                raise ValueError(f"names run {pin.run_id!r}")
        except (OSError, ValueError, msgspec.DecodeError, msgspec.ValidationError) as e:
            log.warning("pin %s is damaged (%s); its run is kept as pinned", d / name, e)
            pin = schema.Pin(run_id=run_id, pinned_by_uid=-1, pinned_by="unknown",
                             pinned_at="", note="(damaged pin file: kept)")
        out[run_id] = pin
    return out


def is_pinned(results_dir: Path, run_id: str) -> bool:
    return os.path.lexists(pins_dir(results_dir) / f"{run_id}.json")


def write_pin(results_dir: Path, pin: schema.Pin) -> None:
    d = pins_dir(results_dir)
    d.mkdir(mode=0o750, exist_ok=True)
    write_bytes_atomic(d / f"{pin.run_id}.json", schema.encode(pin), 0o640)


def remove_pin(results_dir: Path, run_id: str) -> bool:
    try:
        (pins_dir(results_dir) / f"{run_id}.json").unlink()
    except FileNotFoundError:
        return False
    return True

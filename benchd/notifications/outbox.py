"""The notification outbox on disk: logs/notify/ (0700; files 0600, they hold secrets).

    pending/<id>.json   queued or being retried (rewritten after each failed attempt)
    sent/<id>.json      delivered (kept: queueing the same id again is then a no-op)
    dead/<id>.json      given up after the retry window; `retry` moves it back
    targets/<job>.json  a job's own targets, secrets included, written before the job starts

Every write is atomic and durable (temp file, fsync, rename); a move to sent/ or dead/ writes
the new file before it removes the pending one, so a crash in between leaves both and loading
keeps the later state: a delivery is never sent again once it is recorded as sent.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import msgspec

from benchd.schema import Delivery, NotifyTarget
from pipeline.atomicio import write_bytes_atomic
from pipeline.smallfile import UnreadableFile, read_small_file

log = logging.getLogger(__name__)

STATES = ("pending", "sent", "dead")
MAX_FILE_BYTES = 1 << 20      # a delivery is a few KB; anything bigger is not ours
_targets_type = list[NotifyTarget]


class Outbox:
    def __init__(self, logs_dir: Path) -> None:
        self.dir = Path(logs_dir) / "notify"
        self.targets_dir = self.dir / "targets"
        for d in (self.dir, *(self.dir / s for s in STATES), self.targets_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)

    def path(self, state: str, delivery_id: str) -> Path:
        return self.dir / state / f"{delivery_id}.json"

    def known(self, delivery_id: str) -> bool:
        return any(self.path(s, delivery_id).exists() for s in STATES)

    def put(self, d: Delivery) -> bool:
        """Queue `d` durably; False (nothing written) when its id was queued before."""
        if self.known(d.id):
            return False
        self._write("pending", d)
        return True

    def update(self, d: Delivery) -> None:
        self._write("pending", d)

    def move(self, d: Delivery, state: str) -> None:
        """Record `d` in `state` (sent/dead/pending), then drop it from the others."""
        self._write(state, d)
        for other in STATES:
            if other != state:
                self.path(other, d.id).unlink(missing_ok=True)

    def load(self, state: str) -> list[Delivery]:
        """Every readable delivery in `state`; damaged files are logged and skipped."""
        out = []
        later = STATES[STATES.index(state) + 1:] if state == "pending" else ()
        for path in sorted((self.dir / state).glob("*.json")):
            d = self.read(path)
            if d is None:
                continue
            if any(self.path(s, d.id).exists() for s in later):
                path.unlink(missing_ok=True)   # a crash between the two steps of move()
                continue
            out.append(d)
        return out

    def ids(self) -> dict[str, list[str]]:
        """Every delivery id by state, from the file names alone (cheap at start-up)."""
        out: dict[str, list[str]] = {}
        for state in STATES:
            try:
                names = os.listdir(self.dir / state)
            except FileNotFoundError:
                names = []
            out[state] = [n[:-5] for n in names if n.endswith(".json") and not n.startswith(".")]
        return out

    def find(self, delivery_id: str) -> tuple[str, Delivery] | None:
        for state in STATES:
            path = self.path(state, delivery_id)
            if path.exists():
                d = self.read(path)
                if d is not None:
                    return state, d
        return None

    def read(self, path: Path) -> Delivery | None:
        data = _read_small(path)
        if data is None:
            return None
        try:
            return msgspec.json.decode(data, type=Delivery)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            log.warning("notify: ignoring damaged %s: %s", path, e)
            return None

    # a job's own targets -----------------------------------------------------------------
    def save_targets(self, job_id: str, targets: list[NotifyTarget]) -> None:
        write_bytes_atomic(self.targets_dir / f"{job_id}.json", msgspec.json.encode(targets),
                           0o600)

    def load_targets(self, job_id: str) -> list[NotifyTarget]:
        data = _read_small(self.targets_dir / f"{job_id}.json")
        if data is None:
            return []
        try:
            return msgspec.json.decode(data, type=_targets_type)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            log.warning("notify: ignoring damaged targets of job %s: %s", job_id, e)
            return []

    def _write(self, state: str, d: Delivery) -> None:
        write_bytes_atomic(self.path(state, d.id), msgspec.json.encode(d), 0o600)


def _read_small(path: Path) -> bytes | None:
    """A regular file's bytes (no symlink, at most MAX_FILE_BYTES), else None: the shared
    state-file reader, with anything odd logged and skipped."""
    try:
        return read_small_file(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        return None
    except UnreadableFile as e:
        log.warning("notify: ignoring %s: %s", path, e.why)
    except OSError as e:
        log.warning("notify: cannot read %s: %s", path, e.strerror)
    return None

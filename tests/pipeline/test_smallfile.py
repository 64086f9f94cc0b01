"""pipeline.smallfile on real files: the cap is exact, and every kind of non-regular file is
refused by name without being read (a FIFO without blocking)."""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from pipeline.smallfile import MiB, UnreadableFile, read_small_file, size_text


def test_a_file_of_exactly_the_limit_is_read_one_byte_more_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"x" * 1024)
    assert read_small_file(p, 1024) == b"x" * 1024
    with pytest.raises(UnreadableFile) as e:
        read_small_file(p, 1023)
    assert e.value.why == "larger than 1023 bytes"


def test_a_huge_sparse_file_is_refused_from_its_size(tmp_path: Path) -> None:
    p = tmp_path / "huge"
    with open(p, "wb") as f:
        f.truncate(1 << 40)   # sparse: no disk used
    with pytest.raises(UnreadableFile) as e:
        read_small_file(p, MiB)
    assert e.value.why == "larger than 1 MiB" and str(p) in str(e.value)


def test_missing_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_small_file(tmp_path / "nope", MiB)


def _special(tmp_path: Path, kind: str) -> tuple[Path, socket.socket | None]:
    p = tmp_path / kind
    sock = None
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dir":
        p.mkdir()
    elif kind == "symlink":
        p.symlink_to("/dev/zero")
    elif kind == "dangling":
        p.symlink_to(tmp_path / "nowhere")
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(p))
    return p, sock


@pytest.mark.parametrize("kind,why", [("fifo", "a FIFO"), ("dir", "a directory"),
                                      ("symlink", "a symlink"), ("dangling", "a symlink"),
                                      ("socket", "a socket")])
def test_non_regular_files_are_refused_by_name(tmp_path: Path, kind: str, why: str) -> None:
    p, sock = _special(tmp_path, kind)
    out: list[BaseException] = []

    def read() -> None:
        try:
            read_small_file(p, MiB)
        except BaseException as e:  # noqa: BLE001 (handed to the test thread)
            out.append(e)

    t = threading.Thread(target=read, daemon=True)   # a FIFO open must not block: bounded
    t.start()
    t.join(timeout=10)
    if sock is not None:
        sock.close()
    assert not t.is_alive(), f"read_small_file blocked on {kind}"
    assert isinstance(out[0], UnreadableFile) and out[0].why == why, out


def test_size_text() -> None:
    assert [size_text(n) for n in (MiB, 16 * MiB, 3 << 30, 4096, 1000)] == \
        ["1 MiB", "16 MiB", "3 GiB", "4 KiB", "1000 bytes"]

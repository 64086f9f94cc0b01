"""Progress lines found in a job log by benchd.jobs._ProgressReader, on real files: the
reader searches for "@@" line starts instead of splitting every line, and must find exactly
the lines a plain split finds, wherever its READ_CHUNK steps cut the log."""
from __future__ import annotations

import json
import random

from benchd.jobs import READ_CHUNK, _ProgressReader
from pipeline import progress


def _progress_line(i: int, end: bytes = b"\n") -> bytes:
    obj = {"run_id": "r", "k": i, "total": 10**6, "experiment": None, "adapter": None,
           "phase": "perf"}
    return (progress.PREFIX + json.dumps(obj)).encode() + end


def _split_reference(data: bytes, final: bool) -> list[dict]:
    """The obvious reading: split on newlines, parse the lines that start with "@@" (the
    unterminated last line only when the log is complete)."""
    lines = data.split(b"\n")
    if not final:
        lines.pop()
    return [o for o in map(progress.parse_line, lines) if o is not None]


def _read_all(path, final: bool) -> tuple[list[dict], int]:
    reader = _ProgressReader(path)
    out, more, steps = [], True, 0
    while more:
        objs, more = reader.feed(final=final)
        out += objs
        steps += 1
    return out, steps


def test_progress_lines_found_wherever_the_chunks_cut_the_log(tmp_path):
    rng = random.Random(8)
    parts = [_progress_line(0)]  # the very first line is a progress line
    i = 1
    size = len(parts[0])
    while size < 3 * READ_CHUNK:
        if rng.random() < 0.02:
            piece = _progress_line(i, rng.choice([b"\n", b"\r\n"]))
            i += 1
        else:
            piece = rng.choice([b"plain line %d\n" % size, b"@@ not progress\n", b"\n",
                                b"50%\r60%\r@@ inside a \\r line\n", b"x@@y\n"])
        parts.append(piece)
        size += len(piece)
    data = b"".join(parts)
    # a progress line cut by the first and by the second READ_CHUNK boundary
    for boundary in (READ_CHUNK, 2 * READ_CHUNK):
        cut = _progress_line(10**5 + boundary)
        at = data.rfind(b"\n", 0, boundary - 10) + 1  # a line start just before it
        assert at < boundary < at + len(cut)
        data = data[:at] + cut + data[at:]
    data += _progress_line(999_999, b"")  # the last line, without a newline
    path = tmp_path / "log"
    path.write_bytes(data)

    for final in (False, True):
        got, steps = _read_all(path, final)
        assert steps >= 3
        want = _split_reference(data, final)
        assert got == want
        assert (got[-1]["k"] == 999_999) is final
    assert any(o["k"] == 10**5 + READ_CHUNK for o in got)


def test_progress_reader_resumes_a_partial_line_appended_later(tmp_path):
    path = tmp_path / "log"
    line = _progress_line(7)
    path.write_bytes(b"out\n" + line[:10])
    reader = _ProgressReader(path)
    assert reader.feed() == ([], False)
    with open(path, "ab") as f:
        f.write(line[10:] + b"more\n")
    objs, more = reader.feed()
    assert [o["k"] for o in objs] == [7] and not more

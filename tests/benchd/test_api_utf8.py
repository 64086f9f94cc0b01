"""Where a WebSocket `partial` piece may end: never inside a UTF-8 character."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from benchd.api import utf8_boundary


@given(st.text(min_size=1), st.data())
def test_a_cut_text_splits_only_at_character_boundaries(text: str, data: st.DataObject) -> None:
    raw = text.encode()
    end = data.draw(st.integers(1, len(raw)))
    boundaries = [len(text[:i].encode()) for i in range(len(text) + 1)]
    # the last character boundary at or before the end of what has arrived
    assert utf8_boundary(raw[:end]) == max(b for b in boundaries if b <= end)


@given(st.binary(min_size=1, max_size=12))
def test_invalid_bytes_are_never_held_back_for_long(raw: bytes) -> None:
    cut = utf8_boundary(raw)
    assert len(raw) - 3 <= cut <= len(raw)

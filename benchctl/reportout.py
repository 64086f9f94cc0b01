"""Printing a report benchd computed (compare, trend): its JSON, its HTML page or Markdown.

One place for what both commands do with the answer: decode it as its Struct (an answer that
is not one is benchd's error, exit 70), then print it in the form asked for. matplotlib and
the report modules are imported only for --html (start-up of every other command)."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from benchctl.exitcodes import INTERNAL, NO_PLOTS, CliError


def decode(raw: bytes, struct: type) -> Any:
    import msgspec
    try:
        return msgspec.json.decode(raw, type=struct)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CliError(f"benchd's answer is not a {struct.__name__}: {exc}", INTERNAL) from None


Renderer = Callable[[Any], str]


def emit(report: Any, as_json: bool, html: Callable[[], Renderer] | None,
         markdown: Callable[[], Renderer]) -> None:
    """Print `report` as JSON, as HTML, or as Markdown. `html` and `markdown` import and
    return their renderer, so only the one used is imported (the HTML one raises
    PlotsUnavailable when matplotlib is missing: exit 11)."""
    if as_json:
        import msgspec
        sys.stdout.buffer.write(msgspec.json.encode(report) + b"\n")
    elif html is not None:
        from pipeline.report import PlotsUnavailable
        try:
            text = html()(report)
        except PlotsUnavailable as exc:
            raise CliError(f"--html: {exc}", NO_PLOTS) from None
        sys.stdout.write(text)
    else:
        sys.stdout.write(markdown()(report))
    sys.stdout.flush()

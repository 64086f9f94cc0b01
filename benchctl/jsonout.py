"""`--json` output: the API's own msgspec Structs (benchd.schema), decoded to check the shape
and re-encoded with msgspec, so scripts get exactly what the API defines.

Imported only by commands given --json: msgspec costs start-up time the table output avoids.
"""
from __future__ import annotations

import sys
from typing import Any

from benchctl.exitcodes import INTERNAL, CliError


def emit(data: bytes | Any, struct_type: type) -> None:
    """Decode `data` (JSON bytes, or an already-decoded object) as `struct_type`, print it."""
    import msgspec

    try:
        if isinstance(data, (bytes, bytearray)):
            obj = msgspec.json.decode(data, type=struct_type)
        else:
            obj = msgspec.convert(data, type=struct_type)
    except msgspec.ValidationError as exc:
        raise CliError(f"benchd's answer does not match {getattr(struct_type, '__name__', struct_type)}: {exc}",
                       INTERNAL) from None
    sys.stdout.buffer.write(msgspec.json.encode(obj) + b"\n")
    sys.stdout.flush()

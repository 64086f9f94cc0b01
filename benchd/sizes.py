"""Memory sizes as people write them (4G, 512M, 1.5GiB, 4294967296) and as benchd shows them
(4 GiB): --job-memory-max, a job's memory_max, and the out-of-memory reason."""
from __future__ import annotations

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: str | int) -> int:
    """Bytes from an int or a number with K, M, G or T (powers of 1024; a trailing B/iB is
    allowed); ValueError with the value when it is not one, or not above 0."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 4G or 512M, got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        text = value.strip().upper().removesuffix("B").removesuffix("I")
        num, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "")
        try:
            size = int(float(num) * _UNITS[unit])
        except ValueError:
            raise ValueError(f"expected a size such as 4G or 512M, got {value!r}") from None
    if size <= 0:
        raise ValueError(f"must be more than 0, got {value!r}")
    return size


def format_size(size: int) -> str:
    """4294967296 -> '4 GiB', 1610612736 -> '1.5 GiB', 1000 -> '1000 B'."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20),
                         ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} B"

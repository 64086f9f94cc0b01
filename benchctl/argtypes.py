"""argparse value types and options shared by several commands (stdlib only: imported on
every call)."""
from __future__ import annotations

import argparse
import math


def positive_seconds(text: str) -> float:
    """A finite number of seconds > 0 (argparse names the option in its message)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return value


def stall_seconds(text: str) -> float:
    """--stall-timeout: at least MIN_STALL_S (each expiry is a new request to benchd)."""
    value = positive_seconds(text)
    if value < MIN_STALL_S:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_STALL_S:g} s, got {text}")
    return value


MIN_STALL_S = 1.0


def add_follow_timeouts(p: argparse.ArgumentParser, when: str) -> None:
    """--reconnect-timeout and --stall-timeout, for the commands that follow a log (`when`
    names their following options in the help)."""
    p.add_argument("--reconnect-timeout", type=float, default=60.0, metavar="SECONDS",
                   help=f"with {when}: how long to keep retrying while benchd is unreachable "
                        "(default 60)")
    p.add_argument("--stall-timeout", type=stall_seconds, default=60.0, metavar="SECONDS",
                   help=f"with {when}: ask again when the stream has been silent this long "
                        "(a quiet job answers at once; a frozen benchd counts as unreachable; "
                        "default 60)")


def ratio_above_one(text: str) -> float:
    """--threshold: a finite ratio > 1 (1.10: ten percent slower)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a ratio such as 1.10, got {text!r}") from None
    if not (value > 1 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite ratio > 1, got {text}")
    return value


def factor_at_least_one(text: str) -> float:
    """--error-tolerance: a finite factor >= 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a factor such as 1.10, got {text!r}") \
            from None
    if not (value >= 1 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite factor >= 1, got {text}")
    return value

"""Print a shell completion script for bash, zsh or fish (generated from benchctl's parsers).

Job ids, run ids and experiment names are completed live: the script calls a hidden helper
that asks benchd (one-second timeout, silent on errors). Install, e.g.:
  benchctl completion bash > /etc/bash_completion.d/benchctl   (or: source <(benchctl completion bash))
  benchctl completion zsh > "${fpath[1]}/_benchctl"
  benchctl completion fish > ~/.config/fish/completions/benchctl.fish
"""
from __future__ import annotations

import argparse
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings anyway
    from typing import Any

from benchctl.exitcodes import OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell to complete in")


def run(args: argparse.Namespace, ctx: Any) -> int:
    from benchctl import completion
    sys.stdout.write(completion.script(args.shell))
    return OK

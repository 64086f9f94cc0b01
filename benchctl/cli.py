"""benchctl: the command-line client of benchd (over its Unix socket).

Each command is one module in benchctl/commands/ whose docstring is its `--help`; this module
wires them up, finds the socket and turns errors into the exit codes of benchctl.exitcodes.

Why argparse and not click: benchctl is called from scripts in loops and its start-up is
budgeted (at most 1/3 of `supervisorctl status`, see bench/benchctl_startup.py). Measured
here, `import click` alone took ~17 ms of a ~36 ms budget (python with site ~17 ms), which
leaves nothing for the request; argparse costs ~1-2 ms.
"""
from __future__ import annotations

import argparse
import os
import sys

from benchctl.exitcodes import EXIT_CODES, INTERNAL, INTERRUPTED, OK, CliError

COMMANDS: tuple[str, ...] = ("run", "tail", "cancel", "status", "history", "logs", "results",
                             "compare", "trend", "experiments", "notify", "prune", "queue",
                             "wait", "priority", "pause", "resume", "completion", "web")

EXIT_EPILOG = "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES)
SOCKET_HELP = ("benchd's Unix socket, used as given (default: $BENCHD_SOCKET, else "
               "$BENCHD_ROOT/run/benchd.sock, else run/benchd.sock in the current directory or "
               "the nearest parent, if owned by you, root or benchd, else "
               "/run/benchd/benchd.sock)")


class Context:
    """What every command gets besides its arguments: where benchd is and how that was
    decided (a benchctl.discovery.SocketChoice; `status` prints it)."""

    def __init__(self, socket_path: str, socket_how: str = "given",
                 searched: str | None = None, pager: bool = True) -> None:
        self.socket_path = socket_path
        self.socket_how = socket_how
        self.searched = searched
        self.pager = pager      # long output through $PAGER on a terminal (not --no-pager)
        self._client = None

    @property
    def client(self):  # -> benchctl.client.Client (imported lazily: --help needs no socket code)
        if self._client is None:
            from benchctl.client import Client
            self._client = Client(self.socket_path, searched=self.searched)
        return self._client


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, minus its `import shutil` on every add_argument (start-up)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            try:
                width = int(os.environ.get("COLUMNS", "")) - 2
            except ValueError:
                try:
                    width = os.get_terminal_size(sys.__stdout__.fileno()).columns - 2
                except (OSError, ValueError, AttributeError):
                    width = 78
        super().__init__(prog, indent_increment, max_help_position, width)


def _chosen_command(argv: list[str]) -> str | None:
    """The command named on the command line, if it is one (skips --socket's value)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--socket":
            skip = True
        elif arg == "--":
            return None
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; each command module adds its own arguments. With `only`, just
    that command's module is imported and wired (what a normal call needs: start-up time)."""
    common = argparse.ArgumentParser(add_help=False, formatter_class=_Formatter)
    common.add_argument("--socket", metavar="PATH", default=argparse.SUPPRESS, help=SOCKET_HELP)
    common.add_argument("--no-pager", action="store_true", default=argparse.SUPPRESS,
                        help="never page long output (default on a terminal: $PAGER, else "
                             "`less -FRX`)")
    parser = argparse.ArgumentParser(
        prog="benchctl", parents=[common], epilog=EXIT_EPILOG, formatter_class=_Formatter,
        description="Start, follow, cancel and inspect benchmark jobs run by benchd, and "
                    "browse their results. `benchctl COMMAND --help` documents each command.")
    parser.add_argument("--man", action="store_true",
                        help="print benchctl's man page (roff) and exit: "
                             "`benchctl --man | man -l -`")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in (only,) if only else COMMANDS:
        module = __import__(f"benchctl.commands.{name}", fromlist=["run"])
        summary = module.__doc__.strip().split("\n", 1)[0]
        p = sub.add_parser(name, parents=[common], help=summary, description=module.__doc__,
                           epilog=EXIT_EPILOG, formatter_class=_Formatter)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


def reference_table() -> str:
    """README's "benchctl command reference" table, built from the parsers (a test checks the
    README against it; regenerate with `python -c 'import benchctl.cli as c;
    print(c.reference_table())'`)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    rows = ["| command | usage | what it does |", "|---|---|---|"]
    for name in COMMANDS:
        p = sub.choices[name]
        usage = " ".join(p.format_usage().split())[len("usage: "):]
        summary = p.description.strip().split("\n", 1)[0]
        usage = usage.replace("|", "\\|")  # a table cell
        rows.append(f"| `{name}` | `{usage}` | {summary} |")
    return "\n".join(rows)


def exit_code_table() -> str:
    """README's "Exit codes" table, from benchctl.exitcodes.EXIT_CODES."""
    return "\n".join(["| code | meaning |", "|---:|---|"]
                     + [f"| {code} | {text} |" for code, text in EXIT_CODES])


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `benchctl` console script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["__complete"] or argv[2:3] == ["__complete"] and argv[0] == "--socket":
        # the completion scripts' hidden helper: fast, silent, not a documented command
        from benchctl import completion
        sock = argv[1] if argv[0] == "--socket" else None
        return completion.candidates(argv[argv.index("__complete") + 1:], sock)
    if argv[:1] == ["--man"]:
        from benchctl import manpage
        sys.stdout.write(manpage.roff())
        return OK
    args = build_parser(_chosen_command(argv)).parse_args(argv)
    try:
        from benchctl.discovery import choose_socket
        choice = choose_socket(getattr(args, "socket", None))
        return args.func(args, Context(choice.path, choice.how, choice.searched,
                                       pager=not getattr(args, "no_pager", False)))
    except CliError as exc:
        try:
            sys.stdout.flush()  # what was printed so far comes before the message
        except OSError:
            pass
        sys.stderr.write(f"benchctl: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`benchctl logs JOB | head`): stop quietly. Point stdout at
        # /dev/null so the interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return OK
    except Exception as exc:  # a bug: say so briefly, never a traceback for a user
        if os.environ.get("BENCHCTL_DEBUG"):
            raise
        sys.stderr.write(f"benchctl: internal error: {type(exc).__name__}: {exc} "
                         "(set BENCHCTL_DEBUG=1 for a traceback)\n")
        return INTERNAL


if __name__ == "__main__":
    sys.exit(main())

"""Shell completion for benchctl, generated from its argparse parsers (so it cannot drift),
and the hidden `benchctl __complete KIND` helper the scripts call for live candidates.

The helper must be fast and silent: a one-second socket timeout, no message, exit 0 on any
error (a completion that prints a traceback into the command line is worse than none).
Kinds: jobs (ids, newest first), runs (result run ids and `latest`), staged (staged run ids),
experiments (the catalog's names and `all`: the very list benchd validates against, known
without a round trip to the daemon, whose experiment listing imports the libraries).
"""
from __future__ import annotations

import argparse
import sys
HELPER = "__complete"
KINDS = ("jobs", "runs", "staged", "experiments")
TIMEOUT_S = 1.0

# What a positional or an option's value is, by its metavar: the kind of candidates it takes.
_BY_METAVAR = {"JOB": "jobs", "RUN": "runs", "NAMES": "experiments", "NAME": "experiments",
               "PATH": "files"}


def candidates(argv: list[str], socket_path: str | None = None) -> int:
    """`benchctl __complete KIND`: one candidate a line on stdout; nothing (exit 0) on error."""
    try:
        kind = argv[0] if argv else ""
        if kind == "experiments":
            from pipeline.catalog import EXPERIMENTS
            names = ["all", *EXPERIMENTS]
        elif kind in KINDS:
            from benchctl.client import Client
            from benchctl.discovery import choose_socket   # with its trust checks
            client = Client(choose_socket(socket_path).path, timeout=TIMEOUT_S)
            if kind == "jobs":
                names = [j["job_id"] for j in
                         client.call("GET", "/api/benchmark/jobs?limit=100")["jobs"]]
            elif kind == "runs":
                names = ["latest", *(r["run_id"] for r in client.call("GET", "/api/results")
                                     ["runs"])]
            else:
                names = [r["run_id"] for r in client.call("GET", "/api/results/staged")["runs"]]
        else:
            names = []
        sys.stdout.write("".join(f"{n}\n" for n in names))
    except BaseException:   # noqa: BLE001 - silent by contract, whatever happened
        pass
    return 0


class Spec:
    """What completion needs of one command: its options (and which take a value of what
    kind) and what its positional argument is."""

    def __init__(self, name: str, help: str, parser: argparse.ArgumentParser) -> None:
        self.name, self.help = name, help
        self.options: list[tuple[list[str], str | None, str]] = []  # (flags, value kind, help)
        self.positional: str | None = None
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            if action.option_strings:
                takes = action.nargs != 0
                kind = _BY_METAVAR.get(str(action.metavar), "value") if takes else None
                if "--resume" in action.option_strings:
                    kind = "staged"   # only a staged run can be resumed
                if takes and action.choices:
                    kind = "choice:" + " ".join(map(str, action.choices))
                self.options.append((list(action.option_strings), kind, action.help or ""))
            elif not isinstance(action, argparse._SubParsersAction):
                if action.choices:
                    self.positional = "choice:" + " ".join(map(str, action.choices))
                else:
                    self.positional = _BY_METAVAR.get(str(action.metavar))


def specs() -> tuple[list[Spec], list[Spec]]:
    """(top-level options as one Spec list, one Spec per command), from the parsers."""
    from benchctl import cli
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    top = Spec("", "", parser)
    cmds = []
    for name in cli.COMMANDS:
        p = sub.choices[name]
        cmds.append(Spec(name, p.description.strip().split("\n", 1)[0], p))
    return [top], cmds


def _dyn(kind: str | None, shell: str) -> str:
    """Shell code listing candidates for `kind`."""
    if kind is None or kind == "value":
        return ""
    if kind.startswith("choice:"):
        return kind[len("choice:"):]
    if kind == "files":
        return "__files__"
    return {"bash": f"$(benchctl {HELPER} {kind} 2>/dev/null)",
            "fish": f"(benchctl {HELPER} {kind} 2>/dev/null)"}.get(shell, "")


def bash() -> str:
    [top], cmds = specs()
    top_opts = " ".join(f for flags, _, _ in top.options for f in flags)
    value_cases = []
    seen: set[str] = set()
    for spec in [top, *cmds]:
        for flags, kind, _ in spec.options:
            if kind is None or flags[0] in seen:
                continue
            seen.update(flags)
            words = _dyn(kind, "bash")
            action = ('COMPREPLY=($(compgen -f -- "$cur"))' if words == "__files__" else
                      f'COMPREPLY=($(compgen -W "{words}" -- "$cur"))' if words else
                      "COMPREPLY=()")
            value_cases.append(f"      {'|'.join(flags)}) {action}; return;;")
    cmd_cases = []
    for spec in cmds:
        opts = " ".join(f for flags, _, _ in spec.options for f in flags)
        pos = _dyn(spec.positional, "bash")
        cmd_cases.append(f'      {spec.name}) opts="{opts}"; pos="{pos}";;')
    takes_value = "|".join(sorted(seen))
    return f"""# bash completion for benchctl (generated by `benchctl completion bash`)
_benchctl() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  local cmd="" i=1 opts="" pos=""
  while (( i < COMP_CWORD )); do
    case "${{COMP_WORDS[i]}}" in
      {takes_value}) (( i++ ));;
      -*) ;;
      *) cmd="${{COMP_WORDS[i]}}"; break;;
    esac
    (( i++ ))
  done
  case "$prev" in
{chr(10).join(value_cases)}
  esac
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "{' '.join(s.name for s in cmds)} {top_opts}" -- "$cur"))
    return
  fi
  case "$cmd" in
{chr(10).join(cmd_cases)}
  esac
  if [[ $cur == -* || -z $pos ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$pos" -- "$cur"))
  fi
}}
complete -F _benchctl benchctl
"""


def zsh() -> str:
    """zsh runs the bash function through bashcompinit (one generated logic, not two)."""
    return ("#compdef benchctl\n# zsh completion for benchctl (generated by `benchctl "
            "completion zsh`)\nautoload -U +X bashcompinit && bashcompinit\n"
            + bash().split("\n", 1)[1])


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish() -> str:
    [top], cmds = specs()
    out = ["# fish completion for benchctl (generated by `benchctl completion fish`)",
           "complete -c benchctl -f"]

    def option(cond: str, flags: list[str], kind: str | None, help: str) -> str:
        parts = [f"complete -c benchctl -n {_fish_quote(cond)}"]
        for f in flags:
            parts.append(f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}")
        words = _dyn(kind, "fish")
        if words == "__files__":
            parts.append("-r -F")
        elif kind is not None:
            parts.append("-r" + (f" -a {_fish_quote(words)}" if words else ""))
        parts.append(f"-d {_fish_quote(help.split('(')[0].strip()[:60])}")
        return " ".join(parts)

    for flags, kind, help in top.options:
        out.append(option("true", flags, kind, help))
    for spec in cmds:
        out.append(f"complete -c benchctl -n '__fish_use_subcommand' -a {spec.name} "
                   f"-d {_fish_quote(spec.help[:60])}")
        cond = f"__fish_seen_subcommand_from {spec.name}"
        for flags, kind, help in spec.options:
            if flags[0] in ("-h", "--socket", "--no-pager"):
                continue
            out.append(option(cond, flags, kind, help))
        words = _dyn(spec.positional, "fish")
        if words and words != "__files__":
            out.append(f"complete -c benchctl -n {_fish_quote(cond)} -a {_fish_quote(words)}")
    return "\n".join(out) + "\n"


SHELLS = {"bash": bash, "zsh": zsh, "fish": fish}


def script(shell: str) -> str:
    return SHELLS[shell]()

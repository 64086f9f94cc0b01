"""What a pipeline run may be asked for: experiment names, defaults and limits.

Stdlib only and import-cheap: benchd validates job bodies with it and benchctl may list it,
neither of which should import numpy or an astronomy library to do so.
"""
from __future__ import annotations

from collections import namedtuple

EXPERIMENTS: tuple[str, ...] = (
    "frame_rotation_bpn",
    "gmst_era",
    "equ_ecl",
    "equ_horizontal",
    "solar_position",
    "lunar_position",
    "kepler_solver",
    "precession",
    "icrs_ecl_j2000",
)

DEFAULT_N = 1000
DEFAULT_SEED = 42
DEFAULT_PERF_ROUNDS = 5
CI_N = 200
CI_PERF_ROUNDS = 3
# Adaptive rounds stop at a CI half-width of 2 % of the median or after this many seconds of
# timed rounds per library. Measured at load ~3.7 on 2 cores: a 1 s cap made the default run
# (9 experiments, 50 libraries, n=1000) 2.3-2.5x as long as fixed 5 rounds (150-169 s against
# 65-68 s: most libraries hit the cap there); 0.75 s aims at ~2x. --ci stays quick.
DEFAULT_MAX_PERF_SECONDS = 0.75
CI_MAX_PERF_SECONDS = 0.25
MAX_PERF_SECONDS_MAX = 3600.0
N_MAX = 1_000_000        # beyond this a run takes hours for the slow adapters (siderust Moon)
PERF_ROUNDS_MAX = 1000
SEED_MAX = 2**63 - 1


class ConfigError(ValueError):
    """A run configuration value is invalid; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


RunConfig = namedtuple("RunConfig", "experiments n seed perf_rounds no_perf ci max_perf_seconds",
                       defaults=(DEFAULT_MAX_PERF_SECONDS,))
RunConfig.__doc__ = """A validated run configuration (what the orchestrator will actually do):
experiments (tuple[str, ...]), n, seed, perf_rounds (int), no_perf, ci (bool),
max_perf_seconds (float: the adaptive-rounds time cap per adapter). A namedtuple,
not a dataclass or typing.NamedTuple: those imports cost benchctl's start-up 3-14 ms, and
benchctl imports this module to name experiments."""


def did_you_mean(name: str, known: tuple[str, ...] | list[str]) -> str:
    """' (did you mean gmst_era?)' for a near miss, else '' (difflib: imported on a typo only)."""
    import difflib
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close:   # a prefix is a near miss too ('gmst' for 'gmst_era')
        close = [k for k in known if k.startswith(name)][:1] if len(name) >= 3 else []
    return f" (did you mean {close[0]}?)" if close else ""


def experiment_problems(names: list[str]) -> list[str]:
    """Every problem with a list of experiment names, each a sentence without the field name:
    'all' mixed with names, unknown names (with the nearest known one). [] when fine."""
    problems = []
    if "all" in names and len(names) > 1:
        problems.append(f"'all' stands for every experiment and cannot be combined with other "
                        f"names (got {','.join(names)}): give 'all' alone, or only names")
    for s in names:
        if s != "all" and s not in EXPERIMENTS:
            problems.append(f"unknown experiment {s!r}{did_you_mean(s, EXPERIMENTS)}")
    if any(p.startswith("unknown") for p in problems):
        problems.append(f"known: {', '.join(EXPERIMENTS)} (or 'all')")
    return problems


def parse_experiments(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """'all', None, 'a,b' or ['a','b'] -> names in catalog order; unknown names are refused."""
    if value is None:
        return EXPERIMENTS
    items = value.split(",") if isinstance(value, str) else list(value)
    if not items:
        raise ConfigError("experiments", "empty list; use 'all' or name at least one of "
                          + ", ".join(EXPERIMENTS))
    if any(not isinstance(s, str) or not s.strip() for s in items):
        raise ConfigError("experiments", f"every entry must be a non-empty name, got {value!r}")
    names = [s.strip() for s in items]
    if names == ["all"]:
        return EXPERIMENTS
    problems = experiment_problems(names)
    if problems:
        raise ConfigError("experiments", "; ".join(problems))
    return tuple(e for e in EXPERIMENTS if e in names)


def int_problem(value: object, lo: int, hi: int) -> str | None:
    """Why `value` is not an integer in [lo, hi], or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer, got {value!r}"
    if not lo <= value <= hi:
        return f"must be between {lo} and {hi}, got {value}"
    return None


def validate_config(experiments: str | list[str] | None = None, n: int | None = None,
                    seed: int | None = None, perf_rounds: int | None = None,
                    no_perf: bool = False, ci: bool = False,
                    max_perf_seconds: float | None = None) -> RunConfig:
    """Check every value and fill defaults (--ci shrinks n, rounds and the time cap unless
    given). Every bad value is reported at once: 'n: must be ...; seed: must be ...' (the
    first field first)."""
    values = {"n": ((CI_N if ci else DEFAULT_N) if n is None else n, 1, N_MAX),
              "seed": (DEFAULT_SEED if seed is None else seed, 0, SEED_MAX),
              "perf_rounds": ((CI_PERF_ROUNDS if ci else DEFAULT_PERF_ROUNDS)
                              if perf_rounds is None else perf_rounds, 1, PERF_ROUNDS_MAX)}
    if max_perf_seconds is None:
        max_perf_seconds = CI_MAX_PERF_SECONDS if ci else DEFAULT_MAX_PERF_SECONDS
    errors: list[ConfigError] = []
    try:
        names = parse_experiments(experiments)
    except ConfigError as e:
        errors.append(e)
    for field, (value, lo, hi) in values.items():
        problem = int_problem(value, lo, hi)
        if problem:
            errors.append(ConfigError(field, problem))
    if (isinstance(max_perf_seconds, bool) or not isinstance(max_perf_seconds, (int, float))
            or not 0 < max_perf_seconds <= MAX_PERF_SECONDS_MAX):
        errors.append(ConfigError("max_perf_seconds", f"must be a number of seconds in (0, "
                                  f"{MAX_PERF_SECONDS_MAX:g}], got {max_perf_seconds!r}"))
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigError(errors[0].field, "; ".join(
            [errors[0].message] + [f"{e.field}: {e.message}" for e in errors[1:]]))
    return RunConfig(experiments=names, n=values["n"][0], seed=values["seed"][0],
                     perf_rounds=values["perf_rounds"][0], no_perf=bool(no_perf), ci=bool(ci),
                     max_perf_seconds=float(max_perf_seconds))


def to_argv(cfg: RunConfig) -> list[str]:
    """The orchestrator's argv tail for a validated config (benchd runs `python -m pipeline`)."""
    argv = ["--experiments", ",".join(cfg.experiments), "--n", str(cfg.n), "--seed",
            str(cfg.seed), "--perf-rounds", str(cfg.perf_rounds)]
    if cfg.max_perf_seconds != (CI_MAX_PERF_SECONDS if cfg.ci else DEFAULT_MAX_PERF_SECONDS):
        argv += ["--max-perf-seconds", repr(cfg.max_perf_seconds)]
    if cfg.no_perf:
        argv.append("--no-perf")
    if cfg.ci:
        argv.append("--ci")
    return argv

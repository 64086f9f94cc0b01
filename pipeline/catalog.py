"""What a pipeline run may be asked for: experiment names, defaults and limits.

Stdlib only and import-cheap: benchd validates job bodies with it and benchctl may list it,
neither of which should import numpy or an astronomy library to do so.
"""
from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration (what the orchestrator will actually do)."""
    experiments: tuple[str, ...]
    n: int
    seed: int
    perf_rounds: int
    no_perf: bool
    ci: bool
    max_perf_seconds: float = DEFAULT_MAX_PERF_SECONDS


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
    unknown = [s for s in names if s not in EXPERIMENTS]
    if unknown:
        raise ConfigError("experiments", f"unknown experiment {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(EXPERIMENTS)} (or 'all')")
    return tuple(e for e in EXPERIMENTS if e in names)


def _int_in(field: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(field, f"must be between {lo} and {hi}, got {value}")
    return value


def validate_config(experiments: str | list[str] | None = None, n: int | None = None,
                    seed: int | None = None, perf_rounds: int | None = None,
                    no_perf: bool = False, ci: bool = False,
                    max_perf_seconds: float | None = None) -> RunConfig:
    """Check every value and fill defaults (--ci shrinks n and rounds unless given)."""
    if max_perf_seconds is None:
        max_perf_seconds = CI_MAX_PERF_SECONDS if ci else DEFAULT_MAX_PERF_SECONDS
    if (isinstance(max_perf_seconds, bool) or not isinstance(max_perf_seconds, (int, float))
            or not 0 < max_perf_seconds <= MAX_PERF_SECONDS_MAX):
        raise ConfigError("max_perf_seconds", f"must be a number of seconds in (0, "
                          f"{MAX_PERF_SECONDS_MAX:g}], got {max_perf_seconds!r}")
    return RunConfig(
        experiments=parse_experiments(experiments),
        n=_int_in("n", (CI_N if ci else DEFAULT_N) if n is None else n, 1, N_MAX),
        seed=_int_in("seed", DEFAULT_SEED if seed is None else seed, 0, SEED_MAX),
        perf_rounds=_int_in("perf_rounds", (CI_PERF_ROUNDS if ci else DEFAULT_PERF_ROUNDS)
                            if perf_rounds is None else perf_rounds, 1, PERF_ROUNDS_MAX),
        no_perf=bool(no_perf),
        ci=bool(ci),
        max_perf_seconds=float(max_perf_seconds),
    )


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

"""`python -m pipeline` / `pipeline`: validate the request, then hand it to the orchestrator.

Exit codes: 0 published, 1 failure (a reference failed, or the run broke; nothing published
in the latter case), 2 usage (bad option value, unusable results dir, un-resumable run id —
refused before any work), 75 checkpointed at an experiment boundary on request (see
pipeline.checkpoint; nothing published, staged run resumable), 130 SIGINT, 143 SIGTERM
(nothing published, staged run resumable).
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline import catalog, results, threads
from pipeline.orchestrator import Orchestrator, config_record

_CONFIG_OPTIONS = ("experiments", "n", "seed", "perf_rounds", "no_perf", "ci", "worker_timeout",
                   "max_perf_seconds")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--experiments", default="all", show_default=True, metavar="NAMES",
              help="Comma-separated experiment names, or 'all': " + ", ".join(catalog.EXPERIMENTS))
@click.option("--n", type=int, default=None, metavar="N",
              help=f"Cases per experiment (1..{catalog.N_MAX}) [default: {catalog.DEFAULT_N}, "
                   f"--ci: {catalog.CI_N}].")
@click.option("--seed", type=int, default=None, metavar="SEED",
              help=f"Seed of the generated inputs (>= 0) [default: {catalog.DEFAULT_SEED}].")
@click.option("--perf-rounds", type=int, default=None, metavar="R",
              help=f"Timed rounds per library [default: {catalog.DEFAULT_PERF_ROUNDS}, "
                   f"--ci: {catalog.CI_PERF_ROUNDS}].")
@click.option("--max-perf-seconds", type=float, default=None, metavar="S",
              help=f"After --perf-rounds, add timed rounds until the median's 95% CI is "
                   f"within 2% or a library's rounds took S seconds [default: "
                   f"{catalog.DEFAULT_MAX_PERF_SECONDS:g}, --ci: {catalog.CI_MAX_PERF_SECONDS:g}].")
@click.option("--no-perf", is_flag=True, help="Accuracy only: skip timing.")
@click.option("--ci", is_flag=True, help="Small fast run (smaller n and fewer rounds unless given).")
@click.option("--results-dir", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True, help="Where runs are published (staging inside it).")
@click.option("--resume", metavar="RUN_ID", default=None,
              help="Finish an interrupted staged run with its own stored config.")
@click.option("--worker-timeout", type=float, default=None, metavar="SECONDS",
              help="Wall-clock limit per library worker [default: scales with n and rounds].")
@click.pass_context
def main(ctx: click.Context, experiments: str, n: int | None, seed: int | None,
         perf_rounds: int | None, max_perf_seconds: float | None, no_perf: bool, ci: bool,
         results_dir: Path, resume: str | None, worker_timeout: float | None) -> None:
    """Benchmark astronomy libraries against ERFA/SOFA (or DE421) for accuracy and speed.

    Writes results/<YYYY-MM-DD_HH-MM-SS>/<experiment>/<library>.json, summary.md and
    manifest.json, published atomically when the run is complete.

    \b
    Exit codes:
      0    published
      1    published but a reference failed, or the run broke (nothing published)
      2    bad usage: refused before any work, the message names the value
      75   checkpointed at an experiment boundary ($PIPELINE_CHECKPOINT_REQUEST
           exists); nothing published; finish with --resume RUN_ID
      130  SIGINT, 143 SIGTERM: nothing published; finish with --resume RUN_ID"""
    argv = sys.argv[:]
    config = None
    if resume is not None:
        given = [f"--{o.replace('_', '-')}" for o in _CONFIG_OPTIONS
                 if ctx.get_parameter_source(o) is not click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"--resume reuses the staged run's config; drop "
                                   f"{', '.join(given)}")
    else:
        if worker_timeout is not None and not worker_timeout > 0:
            raise click.BadParameter(f"must be > 0, got {worker_timeout}",
                                     param_hint="'--worker-timeout'")
        try:
            cfg = catalog.validate_config(experiments=experiments, n=n, seed=seed,
                                          perf_rounds=perf_rounds, no_perf=no_perf, ci=ci,
                                          max_perf_seconds=max_perf_seconds)
        except catalog.ConfigError as e:
            raise click.BadParameter(e.message, param_hint=f"'--{e.field.replace('_', '-')}'") \
                from None
        config = config_record(cfg, worker_timeout)
    try:
        threads.job_threads()
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    try:
        results_dir = results.check_results_dir(results_dir)
    except results.ResultsDirError as e:
        raise click.BadParameter(str(e), param_hint="'--results-dir'") from None
    try:
        code = Orchestrator(results_dir).run(config, resume, argv)
    except results.ResumeError as e:
        raise click.UsageError(str(e)) from None
    ctx.exit(code)

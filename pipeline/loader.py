"""Read published runs back: a listing newest first, and one run in full (benchd serves these).

Reads both layouts (README "Results layout"): `YYYY-MM-DD_HH-MM-SS[_NN]/` runs with a
manifest, and older `YYYY-MM-DD/<experiment>/<library>.json` runs (schema.LegacyRecord).
Staging (`.staging/`) and unpublished runs are never listed. A malformed file (or one that is
not a regular file of at most results.MAX_FILE_BYTES: pipeline.smallfile) is skipped with a
logged warning (and, for load_run, listed in RunDetail.warnings): one bad file must not hide
every other run. Cheap to import: msgspec and stdlib only.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import msgspec

from pipeline import archive, pins, schema
from pipeline.results import LEGACY_RUN_ID_RE, MANIFEST, MAX_FILE_BYTES, RUN_ID_RE, SUMMARY
from pipeline.smallfile import read_small_file

log = logging.getLogger(__name__)


class RunNotFoundError(LookupError):
    """No published run of that id."""


class InvalidRunIdError(RunNotFoundError, ValueError):
    """Not a plain run name (path separators, dots, anything but the two id formats)."""


def is_run_id(name: str) -> bool:
    """A plain run name of either layout; never a path."""
    return bool(RUN_ID_RE.fullmatch(name) or LEGACY_RUN_ID_RE.fullmatch(name))


def _decode(path: Path, typ: type, warnings: list[str] | None = None):  # type: ignore[no-untyped-def]
    try:
        return msgspec.json.decode(read_small_file(path, MAX_FILE_BYTES), type=typ)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
        msg = f"skipping malformed {path}: {e}"
        log.warning(msg)
        if warnings is not None:
            warnings.append(msg)
        return None


def _legacy_to_result(run_id: str, rec: schema.LegacyRecord) -> schema.LibraryResult:
    """An old record in today's shape; fields it never had stay None."""
    acc = None
    if rec.median_error is not None or rec.max_error is not None:
        acc = schema.AccuracyStats(unit=rec.unit, compared=rec.n, finite=rec.n, nan_count=0,
                                   inf_count=0, p50=rec.median_error, p99=rec.p99_error,
                                   max=rec.max_error)
    perf = None
    if rec.ns_per_op is not None:
        ns = rec.ns_per_op
        perf = schema.PerfStats(rounds=0, inner_repeats=0, ops_per_call=rec.n, median_ns=ns,
                                mean_ns=ns, stdev_ns=0.0, min_ns=ns, max_ns=ns, cv_pct=0.0,
                                call_ns=ns * rec.n, timer_resolution_ns=0.0, valid=True,
                                warnings=["legacy record: one timing, no spread"])
    ref = rec.reference or "erfa"
    return schema.LibraryResult(
        run_id=run_id, experiment=rec.experiment, library=rec.library,
        role=schema.ROLE_REFERENCE if rec.library == ref else schema.ROLE_CANDIDATE,
        status=rec.status, reference=ref, reason=rec.reason, version=rec.version, n=rec.n,
        seed=rec.seed or 0, accuracy=None if rec.library == ref else acc, perf=perf,
        legacy=True)


def _experiment_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _legacy_records(exp_dir: Path, warnings: list[str] | None) -> list[schema.LegacyRecord]:
    recs = (_decode(f, schema.LegacyRecord, warnings) for f in sorted(exp_dir.glob("*.json"))
            if not f.name.startswith("."))
    return [r for r in recs if r is not None]


def _libraries(run_id: str, exp_dir: Path, legacy: bool,
               warnings: list[str] | None) -> dict[str, schema.LibraryResult]:
    if legacy:
        return {r.library: _legacy_to_result(run_id, r) for r in _legacy_records(exp_dir, warnings)}
    out: dict[str, schema.LibraryResult] = {}
    for f in sorted(exp_dir.glob("*.json")):
        res = None if f.name.startswith(".") else _decode(f, schema.LibraryResult, warnings)
        if res is not None:
            out[res.library] = res
    return out


_PLAIN_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _published_manifest(run_dir: Path, warnings: list[str] | None) -> schema.Manifest | None:
    m = _decode(run_dir / MANIFEST, schema.Manifest, warnings)
    msg = None
    if m is not None and m.status != schema.RUN_COMPLETE:
        msg = f"skipping {run_dir}: manifest status {m.status!r}, not published"
    elif m is not None:
        # experiment names become paths under the run: never `..`, `/` or the like
        bad = [e for e in m.experiments if not _PLAIN_NAME_RE.fullmatch(e)]
        if bad:
            msg = f"skipping {run_dir}: manifest names experiment {bad[0]!r}, not a plain name"
    if msg is not None:
        log.warning(msg)
        if warnings is not None:
            warnings.append(msg)
        return None
    return m


class AmbiguousRunError(RunNotFoundError, ValueError):
    """A prefix that more than one published run starts with."""

    def __init__(self, prefix: str, candidates: list[str]) -> None:
        more = " …" if len(candidates) > 10 else ""
        super().__init__(f"run id prefix {prefix!r} is ambiguous: "
                         f"{', '.join(candidates[:10])}{more}")
        self.candidates = candidates


_RUN_PREFIX_RE = re.compile(r"[0-9][0-9_-]{0,21}")   # at most a run id's length; never a path


def _run_names(results_dir: Path, prefix: str = "", before: str | None = None) -> list[str]:
    """Names of the run directories (either layout), newest first, optionally only those
    starting with `prefix` and sorting before `before`: names only, no file is opened."""
    try:
        with os.scandir(results_dir) as it:
            names = {e.name for e in it
                     if e.name.startswith(prefix) and is_run_id(e.name)
                     and e.is_dir(follow_symlinks=False)}
    except (FileNotFoundError, NotADirectoryError):
        return []
    names |= {n for n in archive.archived_ids(results_dir) if n.startswith(prefix)}
    return sorted((n for n in names if before is None or n < before), reverse=True)


def _summary_of_detail(detail: schema.RunDetail) -> schema.RunSummary:
    """An archived run's summary, from the detail kept beside its archive."""
    m = detail.manifest
    libs = sum(len(e.libraries) for e in detail.experiments.values())
    return schema.RunSummary(
        run_id=detail.run_id, layout=detail.layout,
        created_at=m.created_at if m else detail.run_id,
        status=m.status if m else schema.RUN_COMPLETE, experiments=list(detail.experiments),
        libraries=libs, n=m.config.n if m else None, seed=m.config.seed if m else None,
        failed_experiments=[e for e, v in (m.experiments.items() if m else ())
                            if v.status != schema.EXP_DONE], archived=True,
        regression=m.regression.verdict if m and m.regression else None)


def _summary(d: Path) -> schema.RunSummary | None:
    """The RunSummary of run directory `d` (or of its archive when the directory is gone), or
    None (with a warning) when it is not published. A run that retention or a discard moves
    away while it is being read is simply not listed (it is gone)."""
    try:
        return _read_summary(d)
    except FileNotFoundError:
        return None


def _read_summary(d: Path) -> schema.RunSummary | None:
    if not d.exists() and not d.is_symlink():
        detail = archive.read_detail(d.parent, d.name)
        return _summary_of_detail(detail) if detail is not None else None
    if RUN_ID_RE.fullmatch(d.name):
        m = _published_manifest(d, None)
        if m is None:
            return None
        libs = sum(len(list((d / e).glob("*.json"))) for e in m.experiments if (d / e).is_dir())
        return schema.RunSummary(
            run_id=d.name, layout="v1", created_at=m.created_at, status=m.status,
            experiments=list(m.experiments), libraries=libs, n=m.config.n, seed=m.config.seed,
            failed_experiments=[e for e, v in m.experiments.items()
                                if v.status != schema.EXP_DONE],
            regression=m.regression.verdict if m.regression else None)
    exps: list[str] = []
    libs, n, seed = 0, None, None
    for e in _experiment_dirs(d):
        recs = _legacy_records(e, None)
        if recs:
            exps.append(e.name)
            libs += len(recs)
            n = n if n is not None else recs[0].n
            seed = seed if seed is not None else recs[0].seed
    if not exps:
        log.warning("skipping %s: no readable legacy results", d)
        return None
    return schema.RunSummary(run_id=d.name, layout="legacy", created_at=d.name,
                             status=schema.RUN_COMPLETE, experiments=exps, libraries=libs,
                             n=n, seed=seed)


def list_runs(results_dir: Path) -> list[schema.RunSummary]:
    """Every published run under results_dir, newest first (name order = start order),
    archived ones included (`archived`), each with its pin if it has one."""
    return page_runs(results_dir).runs


def page_runs(results_dir: Path, *, limit: int | None = None, before: str | None = None,
              prefix: str = "") -> schema.RunList:
    """One page of published runs, newest first: those whose id starts with `prefix` and
    sorts before the run id `before` (the previous page's `next`). Only the page's own runs
    (and any unpublished ones skipped on the way) have their files read."""
    if before is not None and not is_run_id(before):
        raise InvalidRunIdError(f"before: not a run id: {before!r}")
    if prefix and not _RUN_PREFIX_RE.fullmatch(prefix):
        raise InvalidRunIdError(f"prefix: not the start of a run id: {prefix!r}")
    results_dir = Path(results_dir)
    runs: list[schema.RunSummary] = []
    nxt = None
    for name in _run_names(results_dir, prefix, before):
        if limit is not None and len(runs) >= limit:
            nxt = runs[-1].run_id
            break
        summary = _summary(results_dir / name)
        if summary is not None:
            runs.append(summary)
    pinned = pins.read_pins(results_dir)
    if pinned:
        runs = [msgspec.structs.replace(r, pinned=True, pin_note=pinned[r.run_id].note)
                if r.run_id in pinned else r for r in runs]
    return schema.RunList(runs=runs, next=nxt)


def resolve_run_id(results_dir: Path, ref: str) -> str:
    """The published run `ref` means: `latest`, an exact run id (which wins, so a legacy run
    named like a date is reached by its name), or the one run whose id starts with `ref`.
    RunNotFoundError / InvalidRunIdError / AmbiguousRunError otherwise."""
    if ref == "latest":
        return latest_run_id(results_dir)
    if not isinstance(ref, str) or not _RUN_PREFIX_RE.fullmatch(ref):
        raise InvalidRunIdError(f"not a run id: {ref!r} (expected YYYY-MM-DD_HH-MM-SS[_NN], "
                                f"YYYY-MM-DD, or the start of one)")
    if is_run_id(ref) and ((Path(results_dir) / ref).is_dir()
                           or archive.is_archived(results_dir, ref)):
        return ref
    names = [n for n in _run_names(Path(results_dir), ref)
             if _summary(Path(results_dir) / n) is not None] if ref else []
    if not names:
        raise RunNotFoundError(f"no run {ref!r} in {results_dir} (no published run id starts "
                               f"with it)")
    if len(names) > 1:
        raise AmbiguousRunError(ref, names)
    return names[0]


def load_run(results_dir: Path, run_id: str) -> schema.RunDetail:
    """One published run in full. RunNotFoundError if absent or unpublished (or moved away by
    retention while it was read); InvalidRunIdError (a RunNotFoundError and ValueError) if
    run_id is not a plain run name."""
    try:
        return _load_run(results_dir, run_id)
    except FileNotFoundError:
        raise RunNotFoundError(f"run {run_id!r} was removed while it was read") from None


def _load_run(results_dir: Path, run_id: str) -> schema.RunDetail:
    if not isinstance(run_id, str) or not is_run_id(run_id):
        raise InvalidRunIdError(f"not a run id: {run_id!r} (expected YYYY-MM-DD_HH-MM-SS[_NN] "
                                f"or YYYY-MM-DD)")
    d = Path(results_dir) / run_id
    if not d.exists() and not d.is_symlink():
        detail = archive.read_detail(results_dir, run_id)
        if detail is not None:
            return detail
    if d.is_symlink() or not d.is_dir():   # a run is a directory we wrote, never a link out
        raise RunNotFoundError(f"no run {run_id!r} in {results_dir}")
    warnings: list[str] = []
    if RUN_ID_RE.fullmatch(run_id):
        m = _published_manifest(d, warnings)
        if m is None:
            raise RunNotFoundError(f"run {run_id!r} has no readable published manifest")
        return detail_of_dir(d, m, warnings)
    exps = {}
    for ed in _experiment_dirs(d):
        libs = _libraries(run_id, ed, True, warnings)
        if libs:
            exps[ed.name] = schema.ExperimentDetail(name=ed.name, libraries=libs,
                                                    summary_md=_text(ed / SUMMARY))
    if not exps:
        raise RunNotFoundError(f"legacy run {run_id!r} has no readable results")
    return schema.RunDetail(run_id=run_id, layout="legacy", manifest=None, experiments=exps,
                            warnings=warnings)


def detail_of_dir(run_dir: Path, manifest: schema.Manifest,
                  warnings: list[str] | None = None) -> schema.RunDetail:
    """The RunDetail of a v1 run directory whose manifest is already read: a published run,
    or (the pre-publish regression check and report) the staged run about to be published."""
    warnings = [] if warnings is None else warnings
    run_id = run_dir.name          # the directory names the run (staged or published alike)
    exps = {}
    for name, entry in manifest.experiments.items():
        ed = run_dir / name
        libs = _libraries(run_id, ed, False, warnings) if ed.is_dir() else {}
        exps[name] = schema.ExperimentDetail(name=name, libraries=libs,
                                             summary_md=_text(ed / SUMMARY), status=entry.status)
    return schema.RunDetail(run_id=run_id, layout="v1", manifest=manifest,
                            experiments=exps, warnings=warnings)


def load_experiment(results_dir: Path, run_id: str, experiment: str
                    ) -> tuple[schema.RunSummary, schema.ExperimentDetail] | None:
    """One experiment of one published run (what a trend reads from every run: only that
    experiment's files), with the run's summary; None when the run is not published or
    does not have the experiment."""
    d = Path(results_dir) / run_id
    if not _PLAIN_NAME_RE.fullmatch(experiment) or not is_run_id(run_id):
        return None
    if (not d.exists() and not d.is_symlink()) or LEGACY_RUN_ID_RE.fullmatch(run_id):
        try:
            detail = load_run(results_dir, run_id)
        except RunNotFoundError:
            return None
        exp = detail.experiments.get(experiment)
        if exp is None:
            return None
        return _summary_of_detail(detail), exp
    if d.is_symlink() or not d.is_dir():
        return None
    m = _published_manifest(d, None)
    if m is None or experiment not in m.experiments:
        return None
    ed = d / experiment
    libs = _libraries(run_id, ed, False, None) if ed.is_dir() else {}
    summary = schema.RunSummary(
        run_id=run_id, layout="v1", created_at=m.created_at, status=m.status,
        experiments=list(m.experiments), libraries=len(libs), n=m.config.n, seed=m.config.seed,
        regression=m.regression.verdict if m.regression else None)
    return summary, schema.ExperimentDetail(name=experiment, libraries=libs,
                                            status=m.experiments[experiment].status)


def run_ids(results_dir: Path) -> list[str]:
    """Every published run's id (either layout, archived ones too), newest first: names only."""
    return _run_names(Path(results_dir))


def latest_run_id(results_dir: Path) -> str:
    """The newest published run's id (what `benchctl results latest` means)."""
    runs = page_runs(results_dir, limit=1).runs
    if not runs:
        raise RunNotFoundError(f"no published run in {results_dir}")
    return runs[0].run_id


def _text(path: Path) -> str | None:
    try:
        return read_small_file(path, MAX_FILE_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        if not isinstance(e, FileNotFoundError):
            log.warning("skipping %s: %s", path, e)
        return None

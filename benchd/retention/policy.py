"""What retention deletes or archives: a pure function of the runs' facts and the policy, so
that a property test can check it against every combination of ages, sizes, pins and use.

Protected, whatever the rules say: a pinned run, the newest published run, a run in use (a job
writes or resumes it), and the newest `keep_runs` runs. Rules, in order:
  keep-days         published or archived runs older than D days; staged runs too
  max-results-size  oldest first while the runs' total size is above SIZE
  min-free          under disk pressure, oldest first until `need_bytes` are freed (only when
                    some policy is set: an operator who set none asked for nothing to go)
  archive-after     runs older than D days that no rule deletes are compressed (not pinned ones)
Staged (unpublished) runs only ever go by keep-days.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DAY_S = 86400.0


@dataclass(frozen=True)
class Policy:
    keep_days: float | None = None
    keep_runs: int | None = None
    max_size: int | None = None           # bytes
    keep_job_days: float | None = None
    archive_after: float | None = None    # days
    min_free: float = 0.05                # fraction of the filesystem kept free

    @property
    def enabled(self) -> bool:
        """Whether any rule may delete runs (pressure pruning needs one of these set)."""
        return any(v is not None for v in (self.keep_days, self.keep_runs, self.max_size))

    def describe(self) -> str:
        parts = [f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
                 for name, value in (("keep-days", self.keep_days), ("keep-runs", self.keep_runs),
                                     ("max-results-size", self.max_size),
                                     ("keep-job-days", self.keep_job_days),
                                     ("archive-after", self.archive_after))
                 if value is not None]
        return ", ".join(parts) or "no retention policy set"


@dataclass(frozen=True)
class RunFacts:
    run_id: str
    created: float                        # UNIX time the run started
    size: int                             # bytes on disk (allocated)
    pinned: bool = False
    in_use: bool = False
    archived: bool = False
    staged: bool = False


@dataclass(frozen=True)
class Action:
    run_id: str
    kind: str                             # "delete" | "archive"
    rule: str
    size: int
    age_days: float
    staged: bool = False
    archived: bool = False


@dataclass(frozen=True)
class Kept:
    run_id: str
    why: str                              # pinned | newest | in use | keep-runs
    size: int


def protection(runs: Sequence[RunFacts], policy: Policy) -> dict[str, str]:
    """run id -> why no rule may delete it."""
    published = sorted((r for r in runs if not r.staged), key=lambda r: r.run_id, reverse=True)
    why: dict[str, str] = {}
    for i, r in enumerate(published):
        if r.pinned:
            why[r.run_id] = "pinned"
        elif r.in_use:
            why[r.run_id] = "in use"
        elif i == 0:
            why[r.run_id] = "newest"
        elif policy.keep_runs is not None and i < policy.keep_runs:
            why[r.run_id] = "keep-runs"
    for r in runs:
        if r.staged and (r.pinned or r.in_use):
            why[r.run_id] = "pinned" if r.pinned else "in use"
    return why


def plan(runs: Sequence[RunFacts], policy: Policy, now: float,
         need_bytes: int = 0) -> tuple[list[Action], list[Kept]]:
    """The actions the policy asks for (deletions oldest first, then archivals), and the runs
    a rule would have taken but that are protected (or, under pressure, every protected run:
    what a 507 names)."""
    protected = protection(runs, policy)
    by_age = sorted(runs, key=lambda r: r.created)         # oldest first
    gone: dict[str, Action] = {}

    def age(r: RunFacts) -> float:
        return max(0.0, (now - r.created) / DAY_S)

    def take(r: RunFacts, rule: str) -> None:
        gone[r.run_id] = Action(r.run_id, "delete", rule, r.size, age(r), r.staged, r.archived)

    kept: dict[str, Kept] = {}
    if policy.keep_days is not None:
        for r in by_age:
            if age(r) > policy.keep_days:
                if r.run_id in protected:
                    kept[r.run_id] = Kept(r.run_id, protected[r.run_id], r.size)
                else:
                    take(r, "keep-days")
    if policy.max_size is not None:
        total = sum(r.size for r in runs if not r.staged and r.run_id not in gone)
        for r in by_age:
            if total <= policy.max_size:
                break
            if r.staged or r.run_id in gone:
                continue
            if r.run_id in protected:
                kept[r.run_id] = Kept(r.run_id, protected[r.run_id], r.size)
                continue
            take(r, "max-results-size")
            total -= r.size
    if need_bytes > 0:
        freed = sum(a.size for a in gone.values())
        for r in by_age:
            if freed >= need_bytes:
                break
            if r.staged or r.run_id in gone:
                continue
            if r.run_id in protected:
                continue
            if policy.enabled:
                take(r, "min-free")
                freed += r.size
        if freed < need_bytes:
            kept.update({k: Kept(k, why, next(r.size for r in runs if r.run_id == k))
                         for k, why in protected.items()})
    actions = [gone[r.run_id] for r in by_age if r.run_id in gone]
    if policy.archive_after is not None:
        for r in by_age:
            if (age(r) > policy.archive_after and r.run_id not in gone and not r.archived
                    and not r.staged and protected.get(r.run_id) not in ("pinned", "in use")):
                actions.append(Action(r.run_id, "archive", "archive-after", r.size, age(r)))
    return actions, sorted(kept.values(), key=lambda k: k.run_id)

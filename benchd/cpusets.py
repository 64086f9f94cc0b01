"""CPU sets of running jobs: which CPUs benchd manages, how they group into cores, and which
CPUs a job gets. Pure functions (the one exception, read_cores, reads sysfs and is called
once at startup), so that the allocation is tested on its own and in the scheduler's
model-based test.

The unit of allocation is a core: the SMT siblings of one physical core (sysfs
thread_siblings_list). A core belongs to at most one running job, so no job ever shares a
core's execution units with another (a hyperthread sibling is half a CPU's speed under load,
which would spoil the other job's ns/op). A job asking for k CPUs is pinned to k of the
threads of the cores it was given; the other threads of those cores stay idle.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

Core = tuple[int, ...]          # the CPU numbers of one core's SMT threads, ascending
SYS_CPU = Path("/sys/devices/system/cpu")


def parse_cpu_list(text: str) -> list[int]:
    """'0-3,5' -> [0, 1, 2, 3, 5] (the kernel's cpulist format); ValueError naming the bad
    part otherwise."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if dash else a
        except ValueError:
            raise ValueError(f"not a CPU list (e.g. 1-3,5): {text!r} (bad part {part!r})") \
                from None
        if a < 0 or b < a:
            raise ValueError(f"not a CPU list (e.g. 1-3,5): {text!r} (bad range {part!r})")
        cpus.update(range(a, b + 1))
    return sorted(cpus)


def format_cpu_list(cpus: Iterable[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    out: list[str] = []
    run: list[int] = []
    for c in sorted(set(cpus)):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def default_cpus(online: Iterable[int]) -> list[int]:
    """What benchd manages without --cpus: every online CPU, but CPU 0 is left to the system
    (interrupts, benchd itself, sshd) when there are more than two."""
    cpus = sorted(set(online))
    return cpus[1:] if len(cpus) > 2 and cpus[0] == 0 else cpus


def cores_of(cpus: Iterable[int], siblings: dict[int, Iterable[int]]) -> list[Core]:
    """The managed CPUs grouped into cores by `siblings` (cpu -> its thread_siblings_list);
    only managed threads count, so --cpus may leave a core's sibling out (it then idles
    unless something outside benchd uses it)."""
    managed = set(cpus)
    cores: set[Core] = set()
    for c in managed:
        group = {s for s in siblings.get(c, (c,)) if s in managed} | {c}
        cores.add(tuple(sorted(group)))
    return sorted(cores)


def read_cores(cpus: Iterable[int], sys_cpu: Path = SYS_CPU) -> list[Core]:
    """cores_of the managed CPUs, with siblings from sysfs (a CPU without topology files is
    a core of its own)."""
    siblings: dict[int, list[int]] = {}
    for c in cpus:
        try:
            siblings[c] = parse_cpu_list(
                (sys_cpu / f"cpu{c}" / "topology" / "thread_siblings_list").read_text())
        except (OSError, ValueError):
            siblings[c] = [c]
    return cores_of(cpus, siblings)


def online_cpus(sys_cpu: Path = SYS_CPU) -> list[int]:
    """The online CPUs (sysfs), else the ones this process may run on."""
    import os
    try:
        return parse_cpu_list((sys_cpu / "online").read_text())
    except (OSError, ValueError):
        return sorted(os.sched_getaffinity(0))


def reserved(cpuset: Iterable[int], cores: list[Core]) -> set[int]:
    """Every thread of every core `cpuset` touches: what a running job keeps from others."""
    got = set(cpuset)
    return {c for core in cores if got.intersection(core) for c in core}


def capacity(cores: list[Core]) -> int:
    """The most CPUs one job can be given: every managed thread."""
    return sum(len(core) for core in cores)


def allocate(cores: list[Core], busy: Iterable[int], cpus: int,
             exclusive: bool = False) -> tuple[int, ...] | None:
    """The CPUs to pin a job to, or None when it does not fit now.

    `busy`: the CPUs of running jobs (their whole cores are reserved: see reserved()).
    exclusive: every managed CPU, and only when no job runs. Otherwise free cores, wasting
    the fewest threads: the smallest core that holds what is still needed, else the largest
    one, until their threads add up to `cpus` (ties: lowest CPU numbers). The job is pinned
    to the first `cpus` of those threads."""
    taken = reserved(busy, cores)
    if exclusive:
        return None if taken else tuple(c for core in cores for c in core)
    if cpus < 1:
        raise ValueError(f"cpus must be at least 1, got {cpus}")
    free = sorted((k for k in cores if not taken.intersection(k)), key=lambda k: (len(k), k))
    threads: list[int] = []
    while len(threads) < cpus:
        need = cpus - len(threads)
        fits = [k for k in free if len(k) >= need]
        if fits:
            core = fits[0]
        elif free:
            core = max(free, key=lambda k: (len(k), [-c for c in k]))
        else:
            return None
        free.remove(core)
        threads.extend(core)
    return tuple(sorted(threads[:cpus]))

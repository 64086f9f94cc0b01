"""benchd.cpusets: CPU lists, the default set, SMT cores from sysfs files, allocation."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchd import cpusets


def test_cpu_lists_parse_and_format_round_trip() -> None:
    assert cpusets.parse_cpu_list("0-3,5, 7-8\n") == [0, 1, 2, 3, 5, 7, 8]
    assert cpusets.format_cpu_list([8, 0, 1, 2, 5, 7]) == "0-2,5,7-8"
    for bad in ("", "a", "3-1", "-1", "1,,2"):
        with pytest.raises(ValueError, match="not a CPU list"):
            cpusets.parse_cpu_list(bad)


def test_cpu_0_is_left_to_the_system_only_beyond_two_cpus() -> None:
    assert cpusets.default_cpus([0, 1]) == [0, 1]
    assert cpusets.default_cpus([0, 1, 2, 3]) == [1, 2, 3]


def test_cores_are_read_from_thread_siblings_list(tmp_path: Path) -> None:
    """A real sysfs-shaped tree (4 threads, 2 cores, siblings 0/2 and 1/3); --cpus 1,2,3
    leaves thread 0 out, so core 0/2 is just (2,)."""
    for cpu, sib in {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}.items():
        d = tmp_path / f"cpu{cpu}" / "topology"
        d.mkdir(parents=True)
        (d / "thread_siblings_list").write_text(sib + "\n")
    assert cpusets.read_cores([0, 1, 2, 3], tmp_path) == [(0, 2), (1, 3)]
    assert cpusets.read_cores([1, 2, 3], tmp_path) == [(1, 3), (2,)]
    assert cpusets.read_cores([9], tmp_path) == [(9,)]   # no topology: a core of its own


def test_allocation_never_splits_a_core_and_exclusive_waits_for_all() -> None:
    cores = [(0, 2), (1, 3), (4,)]
    assert cpusets.allocate(cores, [], 1) == (4,)          # the 1-thread core first
    assert cpusets.allocate(cores, [4], 1) == (0,)         # then a thread of a free core
    assert cpusets.allocate(cores, [4, 0], 1) == (1,)      # never 2: 0's sibling is taken
    assert cpusets.allocate(cores, [4, 0, 1], 1) is None
    assert cpusets.allocate(cores, [], 2) == (0, 2)
    assert cpusets.allocate(cores, [0], 3) == (1, 3, 4)     # (0,2) is taken as a whole
    assert cpusets.allocate(cores, [0, 4], 3) is None
    assert cpusets.allocate(cores, [], 5) == (0, 1, 2, 3, 4)
    assert cpusets.allocate(cores, [], 1, exclusive=True) == (0, 2, 1, 3, 4)
    assert cpusets.allocate(cores, [4], 1, exclusive=True) is None
    assert cpusets.reserved([0], cores) == {0, 2}

"""pipeline.metadata: the run's host/library block."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import toy_registry  # noqa: E402

from pipeline import metadata  # noqa: E402


def test_collect_records_host_versions_and_git() -> None:
    m = metadata.collect(toy_registry, seed=11, argv=["pipeline", "--n", "3"])
    assert m.hostname == socket.gethostname() and m.cores == os.cpu_count()
    assert m.cpu_model and m.python.startswith(sys.version.split()[0])
    assert m.utc_time.endswith("Z") and m.seed == 11 and m.argv[-1] == "3"
    assert len(m.load_avg) == 3 and all(x >= 0 for x in m.load_avg)
    head = subprocess.run(["git", "-C", str(metadata.PROJECT_ROOT), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    if head.returncode == 0:
        assert m.git_sha == head.stdout.strip() and m.git_dirty in (True, False)
    assert m.adapter_versions["toy_unavailable"].startswith("unavailable:")
    import numpy
    assert m.adapter_versions["toyref"] == numpy.__version__


def test_git_state_outside_a_checkout(tmp_path: Path) -> None:
    assert metadata.git_state(tmp_path) == (None, None)

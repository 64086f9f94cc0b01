"""Published result runs for tests, made by the real orchestrator (toy registry) once and
cloned under other run ids: real manifests and library files, cheap to make by the hundred.

    template = toy_run(tmp_path)                       # one real run, published
    clone_run(template, results_dir, "2026-01-02_03-04-05", pad_bytes=4096)
    assert run_is_whole(results_dir / "2026-01-02_03-04-05")
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec

from pipeline import schema

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "pipeline" / "fixtures"
PAD = "padding.bin"


def toy_run(where: Path) -> Path:
    """Run the real orchestrator with the toy registry; returns the published run's path."""
    results = Path(where) / "template-results"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURES), str(REPO)]),
           "PIPELINE_REGISTRY": "toy_registry"}
    subprocess.run([sys.executable, "-m", "pipeline", "--results-dir", str(results),
                    "--experiments", "gmst_era", "--n", "20", "--no-perf"], env=env,
                   check=True, capture_output=True, timeout=120)
    [run] = [p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return run


def clone_run(template: Path, results_dir: Path, run_id: str, pad_bytes: int = 0,
              sparse: bool = False) -> Path:
    """A copy of `template` published as `run_id` (its manifest says so), optionally padded
    with a file of `pad_bytes` (sparse: a hole, costing no disk)."""
    dst = Path(results_dir) / run_id
    shutil.copytree(template, dst)
    m = msgspec.json.decode((dst / "manifest.json").read_bytes(), type=schema.Manifest)
    created = f"{run_id[:10]}T{run_id[11:19].replace('-', ':')}+00:00"
    m = msgspec.structs.replace(m, run_id=run_id, created_at=created)
    (dst / "manifest.json").write_bytes(schema.encode(m))
    for f in (dst / "gmst_era").glob("*.json"):
        res = msgspec.json.decode(f.read_bytes(), type=schema.LibraryResult)
        f.write_bytes(schema.encode(msgspec.structs.replace(res, run_id=run_id)))
    if pad_bytes:
        with open(dst / "gmst_era" / PAD, "wb") as f:
            if sparse:
                f.truncate(pad_bytes)
            else:
                f.write(os.urandom(pad_bytes))
    return dst


def run_is_whole(run_dir: Path) -> bool:
    """The manifest verifies: it decodes, names this run, and every experiment it lists has
    its directory with a summary and library records that decode."""
    try:
        m = msgspec.json.decode((run_dir / "manifest.json").read_bytes(), type=schema.Manifest)
        if m.run_id != run_dir.name or m.status != schema.RUN_COMPLETE:
            return False
        for exp in m.experiments:
            d = run_dir / exp
            libs = list(d.glob("*.json"))
            if not libs or not (d / "summary.md").is_file():
                return False
            for f in libs:
                msgspec.json.decode(f.read_bytes(), type=schema.LibraryResult)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return False
    return True

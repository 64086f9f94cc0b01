"""pipeline.worker: the measurement loop, and the worker process on toy and real adapters."""
from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import pipeline_run as pr  # noqa: E402

from pipeline import schema, worker  # noqa: E402


def _worker(tmp: Path, exp: str, adapter: str, env: dict, *extra: str) -> schema.WorkerResult:
    out = tmp / f"{exp}-{adapter}"
    out.mkdir()
    r = subprocess.run([pr.PYTHON, "-m", "pipeline.worker", "--experiment", exp, "--adapter",
                        adapter, "--n", "64", "--seed", "9", "--out", str(out), *extra],
                       env=env, capture_output=True, text=True, timeout=120, cwd=pr.ROOT)
    assert r.returncode == 0, r.stderr
    return msgspec.json.decode((out / "result.json").read_bytes(), type=schema.WorkerResult)


def test_measure_scales_inner_repeats_and_consumes_outputs() -> None:
    calls = []

    def call() -> np.ndarray:
        calls.append(1)
        t = time.perf_counter()
        while time.perf_counter() - t < 0.002:      # a 2 ms "library call"
            pass
        return np.ones((4, 2))
    p = worker.measure(call, rounds=3, resolution_ns=1.0, ops_per_call=4)
    # inner repeats follow the warm-up's median call time (load-independent invariant) ...
    assert p.call_ns >= 2e6 * 0.99
    assert p.inner_repeats == max(1, math.ceil(worker.MIN_ROUND_NS / p.call_ns))
    assert p.rounds == 3 and p.inner_repeats * p.call_ns >= worker.MIN_ROUND_NS
    # ... and a case never costs less than the busy wait's 2 ms / 4 cases
    assert 0.5e6 * 0.99 <= p.min_ns <= p.median_ns <= p.max_ns
    assert p.checksum == len(calls) + 3 * 8     # one item per call + a nansum per round
    assert len(calls) >= 3 * p.inner_repeats


def test_worker_writes_masked_outputs(tmp_path: Path) -> None:
    res = _worker(tmp_path, "gmst_era", "toy_domain", pr.toy_env(), "--no-perf")
    out = tmp_path / "gmst_era-toy_domain"
    full, mask = np.load(out / "outputs.npy"), np.load(out / "mask.npy")
    assert full.shape == (64, 2) and mask.dtype == bool
    assert np.isnan(full[~mask]).all() and np.isfinite(full[mask]).all()
    assert res.status == schema.LIB_OK and res.domain.out_of_domain == int((~mask).sum())
    assert res.perf is None and res.peak_rss_kb > 0 and res.version == np.__version__


def test_worker_records_panic_and_unavailable(tmp_path: Path) -> None:
    panic = _worker(tmp_path, "gmst_era", "toy_panic", pr.toy_env(), "--no-perf")
    assert panic.status == schema.LIB_FAILED and "PanicException" in panic.reason
    skip = _worker(tmp_path, "gmst_era", "toy_unavailable", pr.toy_env(), "--no-perf")
    assert skip.status == schema.LIB_SKIPPED and skip.reason.startswith("unavailable:")


def test_real_erfa_worker_inputs_are_reproducible(tmp_path: Path) -> None:
    """Same (experiment, n, seed) -> bit-identical inputs and outputs, in separate processes."""
    code = ("import hashlib,sys; from pipeline.registry import EXPERIMENTS as E; "
            "i=E['gmst_era'].generate_inputs(500, 42); "
            "print(hashlib.sha256(b''.join(i[k].tobytes() for k in sorted(i))).hexdigest())")
    digests = {subprocess.run([pr.PYTHON, "-c", code], capture_output=True, text=True,
                              env=pr.real_env(), timeout=60, check=True).stdout
               for _ in range(2)}
    assert len(digests) == 1
    outs = []
    for i in range(2):
        d = tmp_path / str(i)
        d.mkdir()
        res = _worker(d, "gmst_era", "erfa", pr.real_env(), "--perf-rounds", "2")
        assert res.status == schema.LIB_OK and res.perf.rounds == 2, res.reason
        outs.append(hashlib.sha256((d / "gmst_era-erfa" / "outputs.npy").read_bytes()).digest())
    assert outs[0] == outs[1]

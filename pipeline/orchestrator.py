"""Runs a validated configuration: per experiment the reference and every candidate, each in
its own worker subprocess; accuracy in this process; files staged, checkpointed, published.

Only this module spawns, signals and waits on worker processes. Workers stay in the
orchestrator's process group, so whoever supervises the orchestrator (benchd) can stop the
whole tree by signalling the group; on SIGTERM/SIGINT the orchestrator itself kills the
running worker, marks the staged run interrupted (resumable), publishes nothing and exits
128 + signal number.

At an experiment boundary the orchestrator also honours a checkpoint request
(pipeline.checkpoint): staged run kept, exit 75.

The signal handler never raises: an exception thrown between two arbitrary bytecodes can land
inside Popen.wait while it holds its internal lock, and the cleanup that follows then waits
on that lock forever. The handler records the signal and SIGKILLs the running worker through
a pidfd (no pid-reuse race); the run loop raises Interrupted at its own checkpoints.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import FrameType, ModuleType
from typing import TextIO

import msgspec
import numpy as np

from pipeline import (checkpoint, metadata, prepublish, progress, results, schema, stats,
                      summary, threads)
from pipeline.atomicio import write_bytes_atomic
from pipeline.checkpoint import CHECKPOINT_REASON, EXIT_CHECKPOINTED
from pipeline.catalog import RunConfig
from pipeline.experiments.base import Experiment
from pipeline.worker import load_registry

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
LOG_TAIL_LINES = 15


class Interrupted(BaseException):
    """SIGTERM/SIGINT arrived; raised at the next checkpoint to unwind the run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def default_worker_timeout(n: int, perf_rounds: int, no_perf: bool) -> float:
    """Generous per-worker wall budget: imports + (accuracy + warm-up + rounds) calls at 1 ms
    per case (siderust's Moon, the slowest library, takes ~0.6 ms per case)."""
    calls = 1 if no_perf else perf_rounds + 2
    return 300.0 + n * calls * 1e-3


def config_record(cfg: RunConfig, worker_timeout_s: float | None) -> schema.RunConfigRecord:
    """catalog.RunConfig -> the manifest's record of it (what --resume will reuse)."""
    return schema.RunConfigRecord(
        experiments=list(cfg.experiments), n=cfg.n, seed=cfg.seed, perf_rounds=cfg.perf_rounds,
        no_perf=cfg.no_perf, ci=cfg.ci, max_perf_seconds=cfg.max_perf_seconds,
        worker_timeout_s=worker_timeout_s or default_worker_timeout(cfg.n, cfg.perf_rounds,
                                                                    cfg.no_perf))


class Checkpointed(Exception):
    """A checkpoint was requested and an experiment boundary reached (pipeline.checkpoint)."""


class Orchestrator:
    def __init__(self, results_dir: Path, out: TextIO | None = None) -> None:
        self.results_dir = results_dir
        self.out = out or sys.stdout
        self.registry: ModuleType | None = None
        self.staged: results.StagedRun | None = None
        self.manifest: schema.Manifest | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._worker_pidfd: int | None = None     # set only while the worker is unreaped
        self._interrupted: int | None = None
        self._published = False
        self.threads = threads.job_threads()     # BLAS/OpenMP threads of every worker

    # ---- signals -------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._published or self._interrupted is not None:
            return               # published: too late to stop; already stopping: once is enough
        self._interrupted = signum
        self._signal_worker()

    def _signal_worker(self) -> None:
        fd = self._worker_pidfd
        if fd is not None:
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _checkpoint(self) -> None:
        """Unwind here if a stop signal has arrived."""
        if self._interrupted is not None:
            raise Interrupted(self._interrupted)

    def _say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _emit(self, phase: str, k: int, total: int, **kw: object) -> None:
        assert self.staged is not None
        progress.emit(phase, run_id=self.staged.run_id, k=k, total=total, stream=self.out, **kw)

    # ---- entry ---------------------------------------------------------------------------
    def run(self, config: schema.RunConfigRecord | None, resume: str | None,
            argv: list[str]) -> int:
        """Run (or resume) and publish. Returns the process exit code."""
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._run(config, resume, argv)
        except Interrupted as e:
            return self._stop(schema.RUN_INTERRUPTED, f"stopped by {e}", 128 + e.signum)
        except Checkpointed:
            return self._stop(schema.RUN_INTERRUPTED, CHECKPOINT_REASON, EXIT_CHECKPOINTED)
        except results.ResumeError:
            raise
        except Exception as e:
            traceback.print_exc(file=self.out)
            return self._stop(schema.RUN_FAILED, f"failed: {type(e).__name__}: {e}", EXIT_FAILURE)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            if self.staged is not None:
                self.staged.close()

    def _stop(self, status: str, reason: str, code: int) -> int:
        """Mark the staged run unpublished (resumable) and say so."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # finish writing the marker
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self._kill_worker()
        if self.staged is None or self.manifest is None:
            if self.staged is not None:     # claimed but nothing written yet: release the id
                shutil.rmtree(self.staged.path, ignore_errors=True)
            self._say(f"pipeline: {reason} before the run was staged; nothing written")
            return code
        self.manifest.status, self.manifest.reason = status, reason
        self.manifest.updated_at = metadata.utc_now()
        try:
            self.staged.write_manifest(self.manifest)
        except OSError as e:
            self._say(f"pipeline: could not mark the staged run {status}: {e}")
        total = len(self.manifest.config.experiments)
        phase = ("checkpointed" if code == EXIT_CHECKPOINTED else "interrupted"
                 if status == schema.RUN_INTERRUPTED else "failed")
        self._emit(phase, len(self.manifest.experiments), total, reason=reason)
        self._say(f"pipeline: {reason}; nothing published. Staged run kept in "
                  f"{self.staged.path} — finish it with: {self._resume_command()}")
        return code

    def _resume_command(self) -> str:
        """How a person finishes this run: through benchctl when benchd runs us (it set
        BENCHD_JOB_ID), else this very interpreter's `-m pipeline` (a bare `python` may be
        another one, without our packages)."""
        run_id = self.staged.run_id
        if os.environ.get("BENCHD_JOB_ID"):
            return f"benchctl run --resume {run_id}"
        return (f"{shlex.quote(sys.executable)} -m pipeline --results-dir "
                f"{shlex.quote(str(self.results_dir))} --resume {run_id}")

    def _run(self, config: schema.RunConfigRecord | None, resume: str | None,
             argv: list[str]) -> int:
        self.registry = load_registry()
        self._checkpoint()
        if resume:
            self.staged, self.manifest = results.open_for_resume(self.results_dir, resume)
            self.manifest.status, self.manifest.reason = schema.RUN_RUNNING, None
            self.manifest.orchestrator_pid = os.getpid()
            self.manifest.resumed_at.append(metadata.utc_now())
            done = ", ".join(self.manifest.experiments) or "none"
            self._say(f"pipeline: resuming {resume} (already done: {done})")
        else:
            assert config is not None
            meta = metadata.collect(self.registry, config.seed, argv,
                                    threads.thread_env(self.threads))
            self.staged = results.claim_run(self.results_dir)
            self.manifest = schema.Manifest(
                run_id=self.staged.run_id, status=schema.RUN_RUNNING,
                created_at=metadata.utc_now(), config=config, metadata=meta,
                orchestrator_pid=os.getpid())
        cfg = self.manifest.config
        self.manifest.updated_at = metadata.utc_now()
        self.staged.write_manifest(self.manifest)
        total = len(cfg.experiments)
        self._emit("start", 0, total, n=cfg.n, seed=cfg.seed)
        self._say(f"pipeline: run {self.staged.run_id}: {total} experiment(s), n={cfg.n}, "
                  f"seed={cfg.seed}, " + ("no perf" if cfg.no_perf else
                                          f"{cfg.perf_rounds} perf rounds")
                  + f", {self.threads} BLAS/OpenMP thread(s) per worker")
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
        if not cfg.no_perf and load > cores:
            self._say(f"pipeline: warning: load average {load:.1f} > {cores} cores — timings "
                      f"will be disturbed (see 'machine busy' in summary.md)")
        for k, name in enumerate(cfg.experiments, 1):
            self._checkpoint()
            if name not in self.manifest.experiments and checkpoint.requested():
                raise Checkpointed()   # a boundary: everything done so far is durable
            if name in self.manifest.experiments:
                self._say(f"[{k}/{total}] {name}: already done in the staged run, kept")
                self._emit("experiment_done", k, total, experiment=name,
                           status=self.manifest.experiments[name].status, kept=True)
                continue
            entry = self._experiment(k, total, name, cfg)
            self.manifest.experiments[name] = entry
            self.manifest.updated_at = metadata.utc_now()
            self.staged.write_manifest(self.manifest)
            self._emit("checkpoint", k, total, experiment=name)
            self._emit("experiment_done", k, total, experiment=name, status=entry.status)
        failed = [e for e, v in self.manifest.experiments.items() if v.status != schema.EXP_DONE]
        self.manifest.status = schema.RUN_COMPLETE
        self.manifest.published_at = self.manifest.updated_at = metadata.utc_now()
        self.manifest.orchestrator_pid = None
        self.manifest.metadata.load_avg_end = metadata.load_avg()
        self.manifest.metadata.cpu_time_s, self.manifest.metadata.peak_rss_bytes = \
            metadata.usage()
        prepublish.before_publish(self.results_dir, self.staged.path, self.manifest, self._say)
        # the final manifest and the rename are one step: a signal waits until both are done
        stop_signals = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        try:
            self._checkpoint()
            self.staged.write_manifest(self.manifest)
            final = self.staged.publish()
            self._published = True
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        try:
            shown = str(final.relative_to(self.results_dir.parent))
        except ValueError:
            shown = str(final)
        self._emit("published", total, total, run_dir=shown,
                   regression=msgspec.to_builtins(self.manifest.regression))
        counts: dict[str, int] = {}
        for entry in self.manifest.experiments.values():
            for st in entry.libraries.values():
                counts[st] = counts.get(st, 0) + 1
        self._say(f"pipeline: published {final} — {total} experiment(s), libraries: "
                  + ", ".join(f"{counts.get(st, 0)} {st}" for st in schema.LIB_STATUSES))
        if failed:
            self._say(f"pipeline: reference failed for {', '.join(failed)} (see summary.md)")
            return EXIT_FAILURE
        return EXIT_OK

    # ---- one experiment ------------------------------------------------------------------
    def _experiment(self, k: int, total: int, name: str,
                    cfg: schema.RunConfigRecord) -> schema.ExperimentEntry:
        assert self.registry is not None and self.staged is not None
        t0 = time.monotonic()
        exp = self.registry.EXPERIMENTS[name]
        ref = exp.reference_adapter
        cands = [a for a in self.registry.candidates(name)
                 if a != ref and a in self.registry.ADAPTERS
                 and self.registry.ADAPTERS[a].supports(name)]
        out_dir = self.staged.begin_experiment(name)
        self._emit("inputs", k, total, experiment=name)
        inputs = exp.generate_inputs(cfg.n, cfg.seed)
        self._say(f"[{k}/{total}] {name}: reference {ref}, candidates "
                  f"{', '.join(cands) or '(none)'}")

        self._emit("reference", k, total, experiment=name, adapter=ref)
        ref_res, ref_wall = self._spawn(name, ref, cfg)
        ref_out = self._outputs(name, ref) if ref_res.status == schema.LIB_OK else None
        records = [self._record(name, ref, schema.ROLE_REFERENCE, ref, ref_res, ref_wall, cfg)]
        self._report(k, total, records[-1])

        for a in cands:
            self._emit("adapter", k, total, experiment=name, adapter=a)
            res, wall = self._spawn(name, a, cfg)
            rec = self._record(name, a, schema.ROLE_CANDIDATE, ref, res, wall, cfg)
            if res.status == schema.LIB_OK:
                if ref_out is None:
                    rec.warnings.append(f"reference {ref} failed: accuracy not computed")
                else:
                    self._emit("accuracy", k, total, experiment=name, adapter=a)
                    try:
                        rec.accuracy = self._accuracy(exp, inputs, ref_out,
                                                      self._outputs(name, a))
                    except Exception as e:   # a bad output must not cost the other libraries
                        rec.status = schema.LIB_FAILED
                        rec.reason = f"accuracy not computable: {type(e).__name__}: {e}"
                if rec.perf and records[0].perf and records[0].perf.median_ns > 0:
                    rec.speed_ratio = rec.perf.median_ns / records[0].perf.median_ns
            records.append(rec)
            self._report(k, total, rec)

        if records[0].perf:
            records[0].speed_ratio = 1.0
        # commit_experiment fsyncs these files and the rename that publishes them in one pass
        for rec in records:
            write_bytes_atomic(out_dir / f"{rec.library}.json", schema.encode(rec), durable=False)
        write_bytes_atomic(out_dir / results.SUMMARY, summary.render(
            name, exp.title, exp.error_unit, exp.perf_contract, self.staged.run_id, cfg.n,
            cfg.seed, ref, records,
            environment=metadata.isolation_line(self.manifest.metadata)).encode(), durable=False)
        self.staged.commit_experiment(name)
        status = schema.EXP_DONE if ref_res.status == schema.LIB_OK else schema.EXP_FAILED
        return schema.ExperimentEntry(
            status=status, reference=ref, libraries={r.library: r.status for r in records},
            finished_at=metadata.utc_now(), duration_s=round(time.monotonic() - t0, 3),
            reason=None if status == schema.EXP_DONE else f"reference {ref}: {ref_res.reason}")

    def _spawn(self, experiment: str, adapter: str,
               cfg: schema.RunConfigRecord) -> tuple[schema.WorkerResult, float]:
        """Run one worker to completion (or timeout) and read its result; a worker that dies
        becomes a failed WorkerResult naming the signal/exit code and its log's tail."""
        assert self.staged is not None
        wd = self.staged.work_dir(experiment, adapter)
        argv = [sys.executable, "-m", "pipeline.worker", "--experiment", experiment,
                "--adapter", adapter, "--n", str(cfg.n), "--seed", str(cfg.seed),
                "--perf-rounds", str(cfg.perf_rounds), "--out", str(wd)]
        if cfg.no_perf:
            argv.append("--no-perf")
        elif cfg.max_perf_seconds is not None:   # None: a run staged before adaptive rounds
            argv += ["--max-perf-seconds", repr(cfg.max_perf_seconds)]
        env = dict(os.environ)
        env.update(threads.thread_env(self.threads))   # before the worker imports numpy
        env["PYTHONPATH"] = os.pathsep.join(
            [str(metadata.PROJECT_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        t0 = time.monotonic()
        reason: str | None = None
        self._checkpoint()
        with open(wd / "worker.log", "wb") as log:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=env)
            self._worker_pidfd = os.pidfd_open(self._proc.pid)
            if self._interrupted is not None:   # the signal came before the pidfd existed
                self._signal_worker()
            try:
                rc = self._proc.wait(timeout=cfg.worker_timeout_s)
            except subprocess.TimeoutExpired:
                self._kill_worker()
                rc = None
                reason = f"timed out after {cfg.worker_timeout_s:g} s (killed)"
            finally:
                fd, self._worker_pidfd = self._worker_pidfd, None
                os.close(fd)
        self._proc = None
        self._checkpoint()
        wall = time.monotonic() - t0
        res_path = wd / "result.json"
        if reason is None and rc == 0 and res_path.exists():
            try:
                res = msgspec.json.decode(res_path.read_bytes(), type=schema.WorkerResult)
                res.log_tail = self._log_tail(wd / "worker.log") or None
                if res.perf is not None:   # the CI of the worker's rounds: scipy loads once, here
                    stats.add_median_ci(res.perf)
                return res, wall
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                reason = f"unreadable worker result: {e}"
        if reason is None:
            how = (f"killed by {signal.Signals(-rc).name}" if rc is not None and rc < 0
                   else f"exited with code {rc}")
            reason = f"worker {how} without a result"
        tail = self._log_tail(wd / "worker.log")
        if tail:
            reason += "\n" + tail
        return schema.WorkerResult(experiment=experiment, adapter=adapter,
                                   status=schema.LIB_FAILED, reason=reason), wall

    def _kill_worker(self) -> None:
        """SIGKILL the running worker and reap it. (No exception can interrupt Popen any
        more — the signal handler never raises — so no child goes untracked.)"""
        p = self._proc
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()

    @staticmethod
    def _log_tail(path: Path) -> str:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def _outputs(self, experiment: str, adapter: str) -> tuple[np.ndarray, np.ndarray]:
        assert self.staged is not None
        wd = self.staged.path / results.WORK / experiment / adapter
        return np.load(wd / "outputs.npy"), np.load(wd / "mask.npy")

    @staticmethod
    def _accuracy(exp: Experiment, inputs: dict[str, np.ndarray],
                  ref: tuple[np.ndarray, np.ndarray],
                  cand: tuple[np.ndarray, np.ndarray]) -> schema.AccuracyStats:
        """exp.error on the cases both computed, summarised. A case the reference itself
        failed on (NaN row, counted in the reference's own record) has no truth to compare to."""
        (r_out, r_mask), (c_out, c_mask) = ref, cand
        both = r_mask & c_mask & np.isfinite(r_out).all(axis=1)
        idx = np.nonzero(both)[0]
        err = np.asarray(exp.error(r_out[both], c_out[both]), dtype=np.float64).reshape(-1)
        if err.shape != idx.shape:
            raise ValueError(f"{exp.name}.error returned {err.shape}, expected {idx.shape}")
        return stats.accuracy(err, idx, inputs, exp.error_unit)

    def _record(self, experiment: str, library: str, role: str, ref: str,
                res: schema.WorkerResult, wall: float,
                cfg: schema.RunConfigRecord) -> schema.LibraryResult:
        assert self.staged is not None and self.registry is not None
        model = res.model
        if model is None and library in self.registry.ADAPTERS:
            model = self.registry.ADAPTERS[library].models.get(experiment)
        return schema.LibraryResult(
            run_id=self.staged.run_id, experiment=experiment, library=library, role=role,
            status=res.status, reference=ref, reason=res.reason, version=res.version,
            model=model, n=cfg.n, seed=cfg.seed, domain=res.domain, perf=res.perf,
            peak_rss_kb=res.peak_rss_kb, worker_s=round(wall, 3), warnings=list(res.warnings),
            log_tail=res.log_tail)

    def _report(self, k: int, total: int, r: schema.LibraryResult) -> None:
        bits = [r.status]
        if r.accuracy and r.accuracy.max is not None:
            bits.append(f"p99 {summary._num(r.accuracy.p99)} / max "
                        f"{summary._num(r.accuracy.max)} {r.accuracy.unit}")
        if r.perf:
            ci = summary._ci(r.perf)
            bits.append(f"{summary._ns(r.perf)} ns/op" + (f" (95% CI {ci}, {r.perf.rounds} "
                                                          f"rounds)" if ci != "–" else ""))
        if r.speed_ratio is not None and r.role == schema.ROLE_CANDIDATE:
            bits.append(f"{r.speed_ratio:.2f}× ref")
        if r.domain and r.domain.out_of_domain:
            bits.append(f"{r.domain.out_of_domain} out of domain")
        if r.reason:
            bits.append(r.reason.splitlines()[0])
        self._say(f"[{k}/{total}] {r.experiment} · {r.library}: {', '.join(bits)} "
                  f"[{r.worker_s:.1f} s]")

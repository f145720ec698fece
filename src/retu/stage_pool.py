"""Run the stages of a pipeline or comparison in order, or several at once on a pool of worker processes.

A stage is one retu run directory (SFT or RL). It resumes itself and is skipped once its run_end
says ok, so an orchestration killed at any moment continues where it stopped when rerun. A study is chains of waves: each chain (one seed of a pipeline) is an iterator of waves, each wave
a list of stages that do not depend on each other; a chain's next wave is drawn only once every
stage of its current wave has finished (the RL branches of a seed need its SFT checkpoints). With
`workers=1` every stage runs in this process, chain after chain, in order. With more workers,
stages of different waves and chains run side by side, each worker process with its share of the
torch threads: a tiny model uses two CPU cores poorly, so two one-thread stages at once get through
1.3-1.6x the work of one two-thread stage (benchmarks/bench_workers.py). A stage that is the only one
ready while nothing else runs (nothing else can become ready before it ends) runs in this process
with every thread and its progress bar, as with one worker. On CPU the thread count has not changed a
number: the findings study's report is byte for byte the same with one and two workers
(docs/findings.md), and tests/integration/test_orchestration.py compares the reports of both.

A worker whose parent has died (killed) exits within a second rather than go on writing a run
directory that a rerun would resume.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from retu.config import RunCfg
from retu.errors import RetuInputError
from retu.metrics import run_end_status


@dataclass(frozen=True)
class Stage:
    """One run directory: `train(cfg, progress=...)` unless its last run_end status is in `done`.
    `train` must pickle (a module-level function, or a functools.partial of one)."""

    cfg: RunCfg
    train: Callable[..., object]
    label: str
    done: tuple[str, ...] = ("ok",)

    def finished(self) -> str | None:
        """Its run_end status when that is one of `done`, else None."""
        status = run_end_status(Path(self.cfg.log.run_dir) / "metrics.jsonl")
        return status if status in self.done else None


def check_workers(what: str, workers: object) -> None:
    """Raise RetuInputError unless `workers` (the `workers` field of `what`'s config) is a positive integer."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise RetuInputError(f"{what}: workers must be a positive integer, got {workers!r}")


def _skipped_label(stage: Stage, status: str) -> str:
    return f"{stage.label} ({'done' if status == 'ok' else status})"


def run_stages(chains: Iterable[Iterator[list[Stage]]], *, workers: int = 1, echo=print,
               progress: bool = True) -> None:
    """Run every stage of every chain (see the module docstring); the first failure stops them all
    and is raised here."""
    chains = list(chains)
    if workers == 1:
        for chain in chains:
            for wave in chain:
                for stage in wave:
                    _run_here(stage, echo, progress)
        return
    _Pool(chains, workers, echo, progress).run()


def _run_here(stage: Stage, echo, progress: bool) -> None:
    status = stage.finished()
    echo(_skipped_label(stage, status) if status else stage.label)
    if not status:
        stage.train(stage.cfg, progress=progress)


class _Pool:
    """The scheduler of `run_stages` with more than one worker."""

    def __init__(self, chains: list[Iterator[list[Stage]]], workers: int, echo, progress: bool):
        import torch

        self.chains, self.workers, self.echo, self.progress = chains, workers, echo, progress
        self.threads = max(1, torch.get_num_threads() // workers)
        self.ready: deque[tuple[int, Stage]] = deque()
        self.left = [0] * len(chains)  # unfinished stages of each chain's current wave
        self.results: queue.Queue = queue.Queue()

    def advance(self, chain: int) -> None:
        """Queue the chain's next wave that has something left to train."""
        for wave in self.chains[chain]:
            todo = []
            for stage in wave:
                status = stage.finished()
                if status:
                    self.echo(_skipped_label(stage, status))
                else:
                    todo.append(stage)
            if todo:
                self.ready.extend((chain, s) for s in todo)
                self.left[chain] = len(todo)
                return

    def finish(self, chain: int) -> None:
        self.left[chain] -= 1
        if not self.left[chain]:
            self.advance(chain)

    def run(self) -> None:
        from retu.engine.models import prepare_model

        for chain in range(len(self.chains)):
            self.advance(chain)
        for model in {stage.cfg.model for _, stage in self.ready}:
            prepare_model(model)  # a base model is built once, here, rather than by two workers at once
        pool = multiprocessing.get_context("spawn").Pool(self.workers, initializer=_start_worker,
                                                         initargs=(os.getpid(), self.threads))
        try:
            running = 0
            while self.ready or running:
                if len(self.ready) == 1 and not running:
                    chain, stage = self.ready.popleft()
                    _run_here(stage, self.echo, self.progress)
                    self.finish(chain)
                    continue
                while self.ready and running < self.workers:
                    chain, stage = self.ready.popleft()
                    self.echo(f"{stage.label} (worker, {self.threads} thread{'s' * (self.threads > 1)})")
                    start = time.monotonic()
                    pool.apply_async(_work, (stage.train, stage.cfg),
                                     callback=partial(self._done, chain, stage, start, None),
                                     error_callback=partial(self._done, chain, stage, start))
                    running += 1
                chain, stage, error, seconds = self.results.get()
                running -= 1
                if error is not None:
                    raise error
                self.echo(f"{stage.label}: finished in {seconds:.0f} s")
                self.finish(chain)
        except BaseException:
            pool.terminate()  # stop the other stages; each resumes from its last checkpoint when rerun
            raise
        else:
            pool.close()  # the idle workers exit on their own, releasing what their libraries hold
        finally:
            pool.join()

    def _done(self, chain: int, stage: Stage, start: float, error: BaseException | None, _result=None) -> None:
        self.results.put((chain, stage, error, time.monotonic() - start))


def _work(train: Callable[..., object], cfg: RunCfg) -> None:
    train(cfg, progress=False)


def _start_worker(parent: int, threads: int) -> None:
    import torch

    from retu.quiet import ignore_library_notices, quiet_library_bars

    torch.set_num_threads(threads)
    ignore_library_notices()  # as the CLI does; a worker's stages show no bars (the pool prints a line each)
    quiet_library_bars()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)  # the parent died (killed): stop before a rerun resumes this stage's run directory

    threading.Thread(target=watch, daemon=True).start()

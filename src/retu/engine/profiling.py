"""What bounds a training step's speed: one optimizer step under torch.profiler (`log.profile_step`).

`StepProfiler` profiles the step `log.profile_step` of an SFT or RL run, from the Trainer's step begin
(after its batch is fetched) to its step end (before that step's records, evaluation and checkpoint).
It writes a `profile` event to metrics.jsonl (`summarize`: the step's wall seconds, the seconds the
device spent in kernels, and the operators or kernels with the most self time) and torch's full table
to `profile-step<N>.txt` in the run directory. On CUDA the ranking is of GPU kernels by self device
time, and `busy_share` = kernel seconds / wall seconds says whether the step waits on kernels (near 1)
or on the host (launches, Python, synchronisation); on CPU it is of operators by self CPU time, traced
on the calling thread only (transformers' continuous batching generates on a thread of its own, so
its CPU profile is nearly empty; CUDA kernels are traced whichever thread launched them). The
profiled step runs slower than the others, and reading the trace back takes about 0.1-0.5 ms per
traced operator or kernel (a step of a 1.5B model traces tens of thousands), so its time is not a
throughput figure; profile the last step to keep the others' timings clean. A profiler that fails
costs only the profile: a warning and a `profile_failed` event, and the run goes on.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity
from transformers import TrainerCallback

from retu.config import RunCfg
from retu.data.io import atomic_write
from retu.engine.run import RunContext, is_main_process
from retu.errors import one_line, warn
from retu.metrics import JsonlLogger

TOP = 12  # operators / kernels listed in the event
NAME_CHARS = 160  # CUTLASS kernel names run to hundreds of characters


def summarize(averages, wall_s: float, cuda: bool, top: int = TOP) -> dict:
    """The profile of one span: wall and busy seconds and the `top` entries by self time.

    Args:
        averages: `torch.profiler.profile(...).key_averages()`: one entry per operator or kernel name,
            with `key`, `count`, `device_type`, `self_cpu_time_total` and `self_device_time_total` (us).
        wall_s: The span's wall-clock seconds.
        cuda: Rank GPU kernels by self device time (else operators by self CPU time).

    Returns:
        {"device": "cuda" | "cpu", "wall_s", "busy_s" (sum of the ranked entries' self time),
        "busy_share" (busy_s / wall_s), "top": [{"name", "s", "share" (of busy_s), "calls"}, ...]},
        largest first.
    """
    if cuda:
        entries = [(e.key, e.self_device_time_total, e.count) for e in averages if e.device_type == DeviceType.CUDA]
    else:
        entries = [(e.key, e.self_cpu_time_total, e.count) for e in averages]
    entries = sorted((x for x in entries if x[1] > 0), key=lambda x: -x[1])
    busy = sum(us for _, us, _ in entries) / 1e6
    return {"device": "cuda" if cuda else "cpu", "wall_s": wall_s, "busy_s": busy,
            "busy_share": busy / wall_s if wall_s > 0 else None,
            "top": [{"name": name[:NAME_CHARS], "s": us / 1e6, "share": us / 1e6 / busy, "calls": calls}
                    for name, us, calls in entries[:top]]}


class Capture:
    """torch.profiler over what runs between `start()` and `stop()` (the device is synchronised at both)."""

    def __init__(self):
        self.cuda = torch.cuda.is_available()
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
        self._profiler = torch.profiler.profile(activities=activities)

    def start(self) -> None:
        self._sync()
        self._t0 = time.perf_counter()
        self._profiler.start()

    def stop(self) -> tuple[dict, str]:
        """(summarize's dict, torch's table of the 40 largest entries by the same ranking)."""
        self._sync()
        wall = time.perf_counter() - self._t0
        self._profiler.stop()
        averages = self._profiler.key_averages()
        table = averages.table(sort_by="self_device_time_total" if self.cuda else "self_cpu_time_total", row_limit=40)
        return summarize(averages, wall, self.cuda), table

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


class StepProfiler(TrainerCallback):
    """Profile optimizer step `step` (1-based) and record it (module docstring)."""

    def __init__(self, step: int, logger: JsonlLogger, run_dir: Path, write: bool):
        self.step, self.logger, self.run_dir, self.write = step, logger, Path(run_dir), write
        self._capture: Capture | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.step:
            try:
                self._capture = Capture()
                self._capture.start()
            except Exception as exc:
                self._failed(exc)

    def on_step_end(self, args, state, control, **kwargs):
        if self._capture is None:
            return
        try:
            summary, table = self._capture.stop()
        except Exception as exc:
            return self._failed(exc)
        finally:
            self._capture = None
        if self.write:
            atomic_write(self.run_dir / f"profile-step{self.step}.txt", table)
            self.logger.log("event", step=state.global_step, event="profile", **summary)

    def _failed(self, exc: Exception) -> None:
        """A profiler that fails (no CUPTI, say) costs the profile, never the run: a warning and an event."""
        self._capture = None
        error = one_line(exc)
        if self.write:
            warn(f"log.profile_step {self.step}: torch.profiler failed ({error}); training goes on unprofiled")
            self.logger.log("event", step=self.step, event="profile_failed", error=error)


def step_profilers(cfg: RunCfg, ctx: RunContext) -> list[StepProfiler]:
    """The run's StepProfiler as a callback list: empty when log.profile_step is 0."""
    step = cfg.log.profile_step
    return [StepProfiler(step, ctx.logger, ctx.run_dir, write=is_main_process())] if step else []

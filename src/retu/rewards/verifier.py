"""The math-verify reward with a hard timeout that works from any thread.

math-verify's own timeouts use `signal.alarm`, which works only in the main thread, and a signal cannot
stop work stuck inside C code (a huge sympy power). So retu runs math-verify in one persistent worker
process (`_worker.py`, started on first use) and talks to it over pipes:

1. The worker arms an interval timer at `SOFT_FRACTION * timeout_s`; slow Python-level sympy work is
   interrupted there, the answer scores 0 with status "timeout", and the worker stays alive.
2. The caller waits for the reply with `select` until `timeout_s`. If none comes (work stuck in C, or a
   crash), the worker is killed, the answer scores 0 with status "timeout" (or "error"), and the next
   call starts a fresh worker (~1 s). So a call returns within `timeout_s` of sending its request,
   plus the wait for the lock when several threads score at once, plus the worker start on first use.

Reward contract (STYLE.md section 5): `verify_math(pred, gold, *, timeout_s) -> RewardResult`. A gold
answer math-verify cannot parse gives `score=None` (skip the row, as TRL does), never 0.

Reference: https://github.com/huggingface/Math-Verify
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from retu.rewards._worker import READY

STATUSES = ("ok", "no_answer", "gold_unparsed", "timeout", "error")
SOFT_FRACTION = 0.8  # the worker's own timer fires first, so the slow kill-and-restart path is rare
START_TIMEOUT_S = 120.0
_WORKER_SCRIPT = Path(__file__).with_name("_worker.py")


@dataclass(frozen=True)
class RewardResult:
    """One scored completion.

    Attributes:
        score: 1.0 correct, 0.0 wrong / no answer / timeout / error, None when the gold is unparseable.
        parsed_pred: The answer text math-verify extracted from the completion, or None.
        parsed_gold: The gold answer as math-verify read it, or None.
        status: One of STATUSES: "ok" (compared), "no_answer", "gold_unparsed", "timeout", "error".
    """

    score: float | None
    parsed_pred: str | None
    parsed_gold: str | None
    status: str


# ---------------------------------------------------------------------------------------------------
# Pipe helpers


def _read_line(fd: int, deadline: float) -> bytes | None:
    """Read one newline-terminated reply; None when `deadline` (monotonic s) passes, b"" on EOF."""
    buf = bytearray()
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b""
        buf += chunk
    return bytes(buf)


def _decode(line: bytes | None) -> dict | None:
    """The worker's reply, or None when there is none to trust (deadline, EOF, garbage)."""
    if not line:
        return None
    try:
        reply = json.loads(line)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) and reply.get("status") in STATUSES else None


def _kill(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        try:
            pipe.close()
        except OSError:  # the pipe broke with the worker; nothing left to flush
            pass


class _ProcBox:
    """Holds the worker so the finalizer can kill it without keeping the verifier alive."""

    proc: subprocess.Popen | None = None


def _finalize(box: _ProcBox) -> None:
    _kill(box.proc)
    box.proc = None


# ---------------------------------------------------------------------------------------------------
# Verifier


class MathVerifier:
    """A math-verify worker process with per-call hard deadlines; safe to share between threads.

    Args:
        worker_cmd: argv of the worker (tests pass a fake one); default runs `_worker.py`.
        start_timeout_s: Seconds allowed for the worker to import math-verify and say it is ready.
    """

    def __init__(self, *, worker_cmd: Sequence[str] | None = None,
                 start_timeout_s: float = START_TIMEOUT_S):
        self._cmd = list(worker_cmd or [sys.executable, "-P", str(_WORKER_SCRIPT)])
        self._start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._box = _ProcBox()
        self._counts: Counter[str] = Counter()
        weakref.finalize(self, _finalize, self._box)
        _LIVE.add(self)

    # -- lifecycle -------------------------------------------------------------------------------

    def _start(self) -> subprocess.Popen:
        proc = subprocess.Popen(self._cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = _read_line(proc.stdout.fileno(), time.monotonic() + self._start_timeout_s)
        if line is None or line.strip() != READY.encode():
            _kill(proc)
            raise RuntimeError(f"math-verify worker did not start: {' '.join(self._cmd)}")
        self._counts["starts"] += 1
        self._box.proc = proc
        return proc

    def _forget_worker_after_fork(self) -> None:
        # The child shares the parent's pipes: drop them (never kill the parent's worker).
        self._box.proc = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Kill the worker now; the next call starts a new one."""
        with self._lock:
            _finalize(self._box)

    # -- calls -----------------------------------------------------------------------------------

    def _send(self, req: dict) -> subprocess.Popen:
        proc = self._box.proc
        if proc is not None:
            try:
                proc.stdin.write(json.dumps(req).encode() + b"\n")
                proc.stdin.flush()
                return proc
            except OSError:  # the worker died between calls
                _finalize(self._box)
        proc = self._start()
        proc.stdin.write(json.dumps(req).encode() + b"\n")
        proc.stdin.flush()
        return proc

    def _call(self, req: dict, timeout_s: float) -> dict:
        """Send one request and wait at most `timeout_s` s for the reply; kill the worker otherwise."""
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        req = {**req, "soft_s": SOFT_FRACTION * timeout_s}
        with self._lock:
            try:
                proc = self._send(req)
                line = _read_line(proc.stdout.fileno(), time.monotonic() + timeout_s)
            except BaseException:
                # E.g. Ctrl-C while waiting: a late reply would answer the next request.
                _finalize(self._box)
                raise
            reply = _decode(line)
            if reply is None:  # deadline passed, worker died or garbled its reply: start afresh
                _finalize(self._box)
                reply = {"status": "timeout" if line is None else "error"}
            self._counts[reply["status"]] += 1
            return reply

    def verify(self, pred: str, gold: str, *, timeout_s: float = 5.0) -> RewardResult:
        """Score one completion against one gold answer; see `verify_math`."""
        reply = self._call({"op": "score", "pred": _text(pred), "gold": _text(gold)}, timeout_s)
        status = reply["status"]
        score = None if status == "gold_unparsed" else reply.get("score", 0.0)
        return RewardResult(score=score, parsed_pred=reply.get("parsed_pred"),
                            parsed_gold=reply.get("parsed_gold"), status=status)

    def check_gold(self, answer: str, *, timeout_s: float = 5.0) -> bool:
        """True if math-verify parses `answer` as a gold answer; see `check_gold`."""
        return bool(self._call({"op": "check_gold", "gold": _text(answer)}, timeout_s).get("ok"))

    def counts(self) -> dict[str, int]:
        """Cumulative calls per status plus worker `starts` (restarts = starts - 1), for metrics."""
        with self._lock:
            return {name: self._counts[name] for name in (*STATUSES, "starts")}


def _text(value: object) -> str:
    return "" if value is None else str(value)


# Every verifier drops its worker handle in a forked child (e.g. DataLoader workers).
_LIVE: weakref.WeakSet[MathVerifier] = weakref.WeakSet()
os.register_at_fork(after_in_child=lambda: [v._forget_worker_after_fork() for v in list(_LIVE)])
_DEFAULT: list[MathVerifier] = []
_DEFAULT_LOCK = threading.Lock()


def default_verifier() -> MathVerifier:
    """The process-wide verifier behind `verify_math`; read its `counts()` for timeout metrics."""
    with _DEFAULT_LOCK:
        if not _DEFAULT:
            _DEFAULT.append(MathVerifier())
        return _DEFAULT[0]


# ---------------------------------------------------------------------------------------------------
# Public functions


def verify_math(pred: str, gold: str, *, timeout_s: float = 5.0) -> RewardResult:
    """Binary math-verify reward for one completion, with a hard timeout, callable from any thread.

    Args:
        pred: The model's completion (any text; the answer is extracted as math-verify does, with
            `\\boxed{}` preferred).
        gold: The gold answer, bare (`18`, `\\frac{1}{2}`) or inside `\\boxed{}`.
        timeout_s: Seconds allowed for parsing and comparing; past it the score is 0.0, status "timeout".

    Returns:
        RewardResult: score 1.0 / 0.0, or None when the gold cannot be parsed (status "gold_unparsed").

    Example:
        >>> verify_math("so \\\\boxed{18}", "18").score
        1.0
    """
    return default_verifier().verify(pred, gold, timeout_s=timeout_s)


def score_completions(preds: Sequence[str], golds: Sequence[str], *,
                      timeout_s: float = 5.0) -> list[RewardResult]:
    """Score completions [B] against their gold answers [B]; each one gets its own `timeout_s`."""
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} completions but {len(golds)} gold answers")
    verifier = default_verifier()
    return [verifier.verify(p, g, timeout_s=timeout_s) for p, g in zip(preds, golds)]


def check_gold(answer: str, *, timeout_s: float = 5.0) -> bool:
    """True if math-verify can parse `answer` as a gold answer (dataset validation; a timeout is False)."""
    return default_verifier().check_gold(answer, timeout_s=timeout_s)


def count_statuses(results: Sequence[RewardResult]) -> dict[str, int]:
    """Results per status, every status present, e.g. for `reward/math_verify/timeouts` per step."""
    found = Counter(r.status for r in results)
    return {name: found[name] for name in STATUSES}

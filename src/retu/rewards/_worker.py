"""The math-verify worker process: one JSON request a line on stdin, one JSON reply a line on stdout.

Started by `retu.rewards.verifier.MathVerifier` as `python -P <this file>`; it imports nothing from
retu, so it runs however retu itself was imported. math-verify's own signal timeouts are disabled
(`parsing_timeout=None`, `timeout_seconds=None`) and replaced by one interval timer per request in
this process's main thread (where signals work). The timer stops slow pure-Python sympy work and
keeps the worker alive; work stuck inside C code ignores it, and then the parent kills this process
at its hard deadline.

Requests: `{"op": "score", "pred": str, "gold": str, "soft_s": float}` and
`{"op": "check_gold", "gold": str, "soft_s": float}`. Replies: `{"score": 1.0|0.0|null,
"parsed_pred": str|null, "parsed_gold": str|null, "status": str}` and `{"ok": bool, "status": str}`.
Statuses: ok, no_answer, gold_unparsed, timeout, error.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys

READY = "retu-math-verify-ready"


class SoftTimeout(BaseException):
    """Raised by the interval timer. A BaseException because math-verify catches every Exception
    (and its own TimeoutException) and would turn our timeout into a silent wrong answer."""


def _on_alarm(signum, frame):
    raise SoftTimeout


def _with_alarm(fn, soft_s):
    """Run `fn()` with SoftTimeout raised after `soft_s` seconds (a late alarm still propagates)."""
    signal.setitimer(signal.ITIMER_REAL, max(soft_s, 1e-3))
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _gold_text(gold):
    # A bare gold answer is boxed so LaTeX like `30^\circ` is read as written, not cut to `30`.
    return gold if "\\boxed" in gold else "\\boxed{" + gold + "}"


def _shown(parsed):
    """The extracted text of a math-verify parse (its last element is the matched string)."""
    if not parsed:
        return None
    last = parsed[-1]
    return last if isinstance(last, str) else str(parsed[0])


def _score(parse, verify, parse_gold, req):
    gold = parse_gold(req["gold"])
    if not gold:
        return {"score": None, "parsed_pred": None, "parsed_gold": None, "status": "gold_unparsed"}
    pred = parse(req["pred"], parsing_timeout=None)
    if not pred:
        return {"score": 0.0, "parsed_pred": None, "parsed_gold": _shown(gold), "status": "no_answer"}
    ok = verify(gold, pred, timeout_seconds=None)
    return {"score": 1.0 if ok else 0.0, "parsed_pred": _shown(pred), "parsed_gold": _shown(gold),
            "status": "ok"}


def _failed(op, status):
    if op == "check_gold":
        return {"ok": False, "status": status}
    return {"score": 0.0, "parsed_pred": None, "parsed_gold": None, "status": status}


def _run(parse, verify, parse_gold, req):
    if req["op"] == "check_gold":
        return {"ok": bool(parse_gold(req["gold"])), "status": "ok"}
    return _score(parse, verify, parse_gold, req)


def _handle(parse, verify, parse_gold, req):
    try:
        return _with_alarm(lambda: _run(parse, verify, parse_gold, req), req["soft_s"])
    except SoftTimeout:
        return _failed(req["op"], "timeout")
    except Exception:  # a crash on one answer must not take the reward down
        return _failed(req["op"], "error")


def main() -> None:
    # Ctrl-C goes to the parent; this process exits when the parent closes its stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _on_alarm)
    # Replies get a private copy of stdout; anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.disable(logging.WARNING)  # math-verify warns once that its own timeouts are off
    from math_verify import parse, verify

    @functools.lru_cache(maxsize=4096)
    def parse_gold(gold):
        # Cached: a GRPO batch scores G completions against the same gold.
        return parse(_gold_text(gold), parsing_timeout=None)

    out.write(READY + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        try:
            reply = _handle(parse, verify, parse_gold, req)
        except SoftTimeout:  # safety belt: an alarm delivered after _handle's own except clauses
            reply = _failed(req["op"], "timeout")
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()

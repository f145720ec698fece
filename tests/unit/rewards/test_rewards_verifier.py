"""The math-verify reward: scores, statuses, threads, and both timeout paths (soft and hard kill)."""

import os
import sys
import textwrap
import threading
import time

import pytest

from retu.rewards import (
    STATUSES,
    MathVerifier,
    RewardResult,
    check_gold,
    count_statuses,
    default_verifier,
    score_completions,
    verify_math,
)
from retu.rewards._worker import READY


def test_correct_boxed_answer_scores_one():
    assert verify_math("so the answer is \\boxed{18}", "18") == RewardResult(1.0, "18", "18", "ok")


def test_wrong_answer_scores_zero():
    res = verify_math("\\boxed{17}", "18")
    assert (res.score, res.parsed_pred, res.status) == (0.0, "17", "ok")


def test_equivalent_latex_forms_match():
    # (3, pi/2) written two ways: math-verify compares the sympy tuples, not the strings.
    assert verify_math("\\boxed{(3, \\pi/2)}", "\\left( 3, \\frac{\\pi}{2} \\right)").score == 1.0
    assert verify_math("\\boxed{\\frac{1}{2}}", "0.5").score == 1.0


@pytest.mark.parametrize("gold", ["", "\\boxed{}"])
def test_unparseable_gold_gives_none(gold):
    assert verify_math("\\boxed{1}", gold) == RewardResult(None, None, None, "gold_unparsed")


def test_completion_without_answer_scores_zero():
    assert verify_math("I do not know", "7") == RewardResult(0.0, None, "7", "no_answer")


def test_gold_with_degree_sign_parses_only_as_string():
    # shared/data/benchmarks/README: such golds parse as strings and match only exactly.
    assert check_gold("30^\\circ.") is True
    assert verify_math("\\boxed{30^\\circ.}", "30^\\circ.").score == 1.0
    assert check_gold("") is False


def test_works_from_a_non_main_thread():
    out = []
    worker = threading.Thread(target=lambda: out.append(verify_math("\\boxed{-11}", "-11")))
    worker.start()
    worker.join(timeout=30)
    assert out == [RewardResult(1.0, "-11", "-11", "ok")]


def test_batch_scores_and_status_counts():
    results = score_completions(["\\boxed{2}", "\\boxed{3}", "\\boxed{4}", "nothing"], ["2", "2", "", "5"])
    assert [r.score for r in results] == [1.0, 0.0, None, 0.0]
    assert count_statuses(results) == {"ok": 2, "no_answer": 1, "gold_unparsed": 1, "timeout": 0, "error": 0}
    with pytest.raises(ValueError, match="2 completions but 1 gold"):
        score_completions(["a", "b"], ["1"])


def test_nonpositive_timeout_is_rejected():
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        verify_math("\\boxed{1}", "1", timeout_s=0)


def test_slow_sympy_times_out_softly_and_keeps_the_worker():
    verifier = default_verifier()
    verify_math("\\boxed{1}", "1")  # make sure the worker is up before timing
    before = verifier.counts()
    t0 = time.monotonic()
    # Comparing 9^(9^(9^9)) with 1 runs sympy for minutes; the worker's timer stops it at
    # 0.8 * 2 s = 1.6 s, before the caller's 2 s hard deadline.
    res = verify_math("\\boxed{9^{9^{9^{9}}}}", "1", timeout_s=2.0)
    elapsed = time.monotonic() - t0
    assert res == RewardResult(0.0, None, None, "timeout")
    assert 1.6 <= elapsed < 2.0
    after = verifier.counts()
    assert after["timeout"] - before["timeout"] == 1
    assert after["starts"] == before["starts"]  # no restart needed
    assert verify_math("\\boxed{5}", "5").score == 1.0


FAKE_WORKER = textwrap.dedent(f"""
    import json, sys, time
    print({READY!r}, flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req["pred"] == "hang":
            time.sleep(600)  # never answers, like sympy stuck in C code
        if req["pred"] == "crash":
            sys.exit(1)
        if req["pred"] == "garbage":
            print("not json", flush=True)
            continue
        print(json.dumps({{"score": 1.0, "parsed_pred": "1", "parsed_gold": "1", "status": "ok"}}), flush=True)
""")


@pytest.fixture
def fake_verifier(tmp_path):
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    verifier = MathVerifier(worker_cmd=[sys.executable, str(script)])
    yield verifier
    verifier.close()


def test_stuck_worker_is_killed_at_the_deadline_and_restarted(fake_verifier):
    t0 = time.monotonic()
    res = fake_verifier.verify("hang", "1", timeout_s=0.5)
    elapsed = time.monotonic() - t0
    assert res == RewardResult(0.0, None, None, "timeout")
    assert 0.5 <= elapsed < 1.5  # 0.5 s deadline; the kill itself takes milliseconds
    assert fake_verifier.verify("x", "1").score == 1.0
    assert fake_verifier.counts() == {"ok": 1, "no_answer": 0, "gold_unparsed": 0, "timeout": 1,
                                      "error": 0, "starts": 2}


def test_crashed_worker_gives_error_then_recovers(fake_verifier):
    assert fake_verifier.verify("crash", "1") == RewardResult(0.0, None, None, "error")
    assert fake_verifier.verify("x", "1").status == "ok"
    assert fake_verifier.counts()["starts"] == 2


def test_garbled_reply_gives_error_then_recovers(fake_verifier):
    assert fake_verifier.verify("garbage", "1").status == "error"
    assert fake_verifier.verify("x", "1").status == "ok"
    assert fake_verifier.counts()["starts"] == 2


def test_interrupted_wait_kills_the_worker_so_no_stale_reply_survives(fake_verifier, monkeypatch):
    from retu.rewards import verifier as module

    assert fake_verifier.verify("x", "1").status == "ok"

    def interrupted(fd, deadline):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "_read_line", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fake_verifier.verify("x", "1")
    monkeypatch.undo()
    assert fake_verifier.verify("x", "1").status == "ok"
    assert fake_verifier.counts()["starts"] == 2


def test_forked_child_gets_its_own_worker():
    verifier = default_verifier()
    verify_math("\\boxed{1}", "1")
    starts = verifier.counts()["starts"]
    pid = os.fork()
    if pid == 0:  # child: must never return into pytest
        code = 1
        try:
            code = 0 if verify_math("\\boxed{4}", "4").score == 1.0 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's worker was neither killed nor confused by the child.
    assert verify_math("\\boxed{6}", "6").score == 1.0
    assert verifier.counts()["starts"] == starts


def test_worker_that_never_starts_raises(tmp_path):
    script = tmp_path / "mute.py"
    script.write_text("import sys; sys.exit(3)\n")
    verifier = MathVerifier(worker_cmd=[sys.executable, str(script)], start_timeout_s=10)
    with pytest.raises(RuntimeError, match="math-verify worker did not start"):
        verifier.verify("1", "1")


def test_statuses_are_the_documented_set():
    assert STATUSES == ("ok", "no_answer", "gold_unparsed", "timeout", "error")

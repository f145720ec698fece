"""The findings logic: verdicts, and every claim on synthetic evidence (one seed and several)."""

import math

import numpy as np
import pytest

from retu.report.estimates import Estimate, combine
from retu.report.findings import (
    Branch,
    Finding,
    SceneEvidence,
    SeedEvidence,
    Untested,
    render_findings,
    check_claims,
    check_each_seed,
    verdict,
)


def est(value, half=2.0):
    return Estimate(value, value - half, value + half)


def scene(name="arith", *, n_train=1000, difficulty=3.0, min_val=0.1, switch=300, sft_best=60.0, sft_ceiling=62.0,
          branches=((100, "Adaptive", 50.0), (300, "Stable", 75.0))):
    return SceneEvidence(name, n_train, difficulty, min_val, switch, est(sft_best, 3.0),
                         None if sft_ceiling is None else est(sft_ceiling, 3.0),
                         tuple(Branch(s, p, est(a)) for s, p, a in branches))


def by_id(results):
    return {r.id: r for r in results}


def test_verdict_needs_intervals_apart():
    assert verdict(est(80), est(70)) == "holds"
    assert verdict(est(70), est(80)) == "fails"
    assert verdict(est(72, 3), est(70, 3)) == "inconclusive"
    assert verdict(est(80), Estimate(70, math.nan, math.nan)) == "inconclusive"


def test_f1_to_f3_hold_on_a_clear_run():
    ev = [SeedEvidence(0, (scene(),), base_ceiling=est(10.0))]
    r = by_id(check_claims(ev))
    assert (r["F1"].verdict, r["F2"].verdict, r["F3"].verdict) == ("holds", "holds", "holds")
    assert r["F1"].numbers["best SFT-then-RL A_post"].value == 75.0
    assert set(r["F1"].numbers) == {"best SFT-then-RL A_post", "pure SFT best checkpoint", "pure SFT fitted ceiling"}
    # No Severe branch, one dataset, no paradigms: F4-F8 are untested, each with its reason.
    assert all(isinstance(r[i], Untested) for i in ("F4", "F5", "F6", "F7", "F8"))
    assert "Severe" in r["F4"].reason and "LUFFY" in r["F8"].reason


def test_f1_fails_when_sft_is_clearly_better_and_is_inconclusive_on_overlap():
    fails = by_id(check_claims([SeedEvidence(0, (scene(sft_best=90.0, sft_ceiling=None),))]))["F1"]
    assert fails.verdict == "fails" and "pure SFT fitted ceiling" not in fails.numbers
    close = by_id(check_claims([SeedEvidence(0, (scene(sft_best=73.0),))]))["F1"]
    assert close.verdict == "inconclusive"


def test_f3_and_f4_read_the_branch_phases():
    s = scene(branches=((100, "Adaptive", 70.0), (300, "Stable", 60.0), (500, "Severe", 80.0)))
    r = by_id(check_claims([SeedEvidence(0, (s,))]))
    assert r["F3"].verdict == "fails"  # Adaptive clearly above Stable
    assert r["F4"].verdict == "fails"  # Severe clearly above Stable/Mild
    s = scene(branches=((100, "Adaptive", 50.0), (300, "Mild", 70.0), (500, "Severe", 60.0)))
    r = by_id(check_claims([SeedEvidence(0, (s,))]))
    assert (r["F3"].verdict, r["F4"].verdict) == ("holds", "holds")


def test_f4_uses_the_first_dataset_that_overfits_severely_in_every_seed():
    small = scene("n250", n_train=250, branches=((300, "Stable", 50.0), (500, "Severe", 40.0)))
    only_one = scene("n500", n_train=500, branches=((300, "Stable", 50.0), (500, "Severe", 70.0)))
    ev = [SeedEvidence(0, (scene(), small, only_one)), SeedEvidence(1, (scene(), small, scene("n500", n_train=500)))]
    f4 = by_id(check_claims(ev))["F4"]
    assert f4.verdict == "holds" and set(f4.numbers) == {"best Stable/Mild A_post (n250)", "Severe A_post (n250)"}
    assert f4.numbers["Severe A_post (n250)"].value == 40.0 and f4.numbers["Severe A_post (n250)"].seeds == 2


def test_size_and_difficulty_ladders_and_the_correlation():
    scenes = (scene("n1000", n_train=1000, min_val=0.20, branches=((300, "Stable", 70.0),)),
              scene("n250", n_train=250, min_val=0.40, branches=((300, "Stable", 50.0),)),
              scene("n500", n_train=500, min_val=0.30, branches=((300, "Stable", 60.0),)),
              scene("easy", n_train=1000, difficulty=1.5, min_val=0.35, branches=((300, "Stable", 55.0),)),
              scene("hard", n_train=1000, difficulty=4.5, min_val=0.15, branches=((300, "Stable", 80.0),)))
    r = by_id(check_claims([SeedEvidence(0, scenes)]))
    assert r["F5"].verdict == "holds" and list(r["F5"].numbers) == [
        "A_post at the switch, n250 (size 250)", "A_post at the switch, n500 (size 500)",
        "A_post at the switch, n1000 (size 1000)"]
    assert r["F6"].verdict == "holds" and [v.value for v in r["F6"].numbers.values()] == [55.0, 70.0, 80.0]
    corr = r["F7"].numbers["Pearson r (min val loss, A_post at the switch)"]
    assert corr.value == pytest.approx(np.corrcoef([0.2, 0.4, 0.3, 0.35, 0.15], [70, 50, 60, 55, 80])[0, 1])
    assert corr.n == 5 and corr.hi < -0.8  # r = -0.991, Fisher z interval [-0.999, -0.868]
    assert r["F7"].verdict == "holds"
    # A weaker correlation on as few points has an interval reaching past -0.8: inconclusive.
    loose = tuple(scene(f"s{i}", n_train=100 * (i + 1), min_val=v, branches=((300, "Stable", a),))
                  for i, (v, a) in enumerate([(0.2, 70), (0.4, 50), (0.3, 66), (0.35, 52), (0.15, 80)]))
    assert by_id(check_claims([SeedEvidence(0, loose)]))["F7"].verdict == "inconclusive"
    # The size ladder fails when the larger set is clearly worse.
    worse = (scenes[0], scene("n250", n_train=250, branches=((300, "Stable", 90.0),)))
    assert by_id(check_claims([SeedEvidence(0, worse)]))["F5"].verdict == "fails"


def test_f8_compares_each_synchronized_method():
    ev = [SeedEvidence(0, (scene(),), paradigms={"luffy": est(20.0), "upt": est(74.0)})]
    f8 = by_id(check_claims(ev))["F8"]
    assert f8.verdict == "inconclusive" and set(f8.numbers) == {"best SFT-then-RL A_post", "LUFFY ceiling", "UPT ceiling"}
    ev = [SeedEvidence(0, (scene(),), paradigms={"luffy": est(20.0), "srft": est(30.0)})]
    assert by_id(check_claims(ev))["F8"].verdict == "holds"


def test_several_seeds_combine_before_the_verdict():
    seeds = [SeedEvidence(s, (scene(sft_best=b, sft_ceiling=None, branches=((300, "Stable", a),)),))
             for s, (a, b) in enumerate([(75.0, 60.0), (74.0, 61.0), (76.0, 59.0)])]
    f1 = by_id(check_claims(seeds))["F1"]
    best = f1.numbers["best SFT-then-RL A_post"]
    assert best.seeds == 3 and best.value == pytest.approx(75.0) and f1.verdict == "holds"
    # A seed that lacks the claim's runs makes the claim untested, not silently skipped.
    seeds.append(SeedEvidence(9, (scene(branches=()),)))
    assert isinstance(by_id(check_claims(seeds))["F1"], Untested)


def test_render_lists_tested_claims_then_the_reasons_for_the_rest():
    results = check_claims([SeedEvidence(0, (scene(),), base_ceiling=est(10.0))])
    text = render_findings(results, 1)
    assert text.startswith("## Findings")
    assert "| F1 | SFT-then-RL beats pure SFT" in text and "**holds**" in text
    assert "- F8 (LUFFY, SRFT and UPT from the base stay below SFT-then-RL): needs LUFFY" in text
    assert isinstance(results[0], Finding) and results[0].to_dict()["numbers"]["best SFT-then-RL A_post"]["lo"] == 73.0


def test_an_open_sft_ceiling_stays_open_across_seeds_and_only_fails_clear_losers():
    from retu.report.evidence import credible_ceiling

    best = Estimate(46.0, 41.2, 50.9, 400)
    # A fit that ends below the run's best checkpoint has not found the ceiling: "at least the best".
    open_ = credible_ceiling(Estimate(23.8, 21.0, 41.3, how="fit"), best)
    assert (open_.value, open_.lo, open_.hi) == (46.0, 41.2, math.inf) and open_.text().endswith("inf] (at least the best checkpoint)")
    assert credible_ceiling(est(60.0), best) == est(60.0)  # a fit reaching above the best stays
    both = combine([open_, est(50.0)])
    assert both.hi == math.inf and both.value == pytest.approx(48.0)
    assert verdict(est(80.0), open_) == "inconclusive" and verdict(est(30.0), open_) == "fails"


def test_each_seed_alone_gets_its_verdicts_beside_the_combined_ones():
    seeds = [SeedEvidence(0, (scene(),), base_ceiling=est(10.0)), SeedEvidence(1, (scene(sft_best=73.0),))]
    per_seed = check_each_seed(seeds)
    assert [by_id(per_seed[s])["F1"].verdict for s in (0, 1)] == ["holds", "inconclusive"]
    assert isinstance(by_id(per_seed[1])["F2"], Untested)  # seed 1 has no RL from the base model
    text = render_findings(check_claims(seeds), 2, per_seed)
    table = text[text.index("Each seed alone"):text.index("Not tested here")]
    assert "| id | seed 0 | seed 1 |" in table
    assert "| F1 | holds | inconclusive |" in table and "| F2 | holds | - |" in table
    assert "| F4 |" not in table  # no seed can test it: no row

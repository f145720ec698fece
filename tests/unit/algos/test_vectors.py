"""spec/vectors.json reproduced by retu.algos (vectors a, b, c, d, e, h, i; f and g are FLOPs).

Every expected number comes from ../shared/spec/vectors.py, an independent numpy implementation of
spec/ALGORITHMS.md. Gradients are d(loss)/d(logprobs) by autograd, compared with the analytic
per-token gradients stored in the file. float64: rtol 1e-9; float32: rtol 1e-5.
"""

from dataclasses import replace

import pytest
import torch
from conftest import shared_json

from retu.algos import advantages as adv_fns
from retu.algos.hybrid import compute_seq_entropy, compute_srft_weights, luffy, srft
from retu.algos.policy import compute_kl_k3
from retu.algos.registry import build, build_loss
from retu.algos.types import LossInputs
from retu.errors import RetuInputError

V = shared_json("spec/vectors.json")
TOL = {torch.float64: dict(rtol=1e-9, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6)}


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def close(actual, expected, dtype=torch.float64):
    torch.testing.assert_close(actual.detach().to(torch.float64), t(expected), **TOL[dtype])


def leaf(x, dtype):
    return t(x, dtype).requires_grad_(True)


def grad_of(loss, x):
    (g,) = torch.autograd.grad(loss, x)
    return g


# ---------------------------------------------------------------------------------------------------
# a: GRPO / DAPO advantages


def test_a_grpo_advantages():
    a = V["a_grpo_dapo_advantages"]
    r, ids = t(a["rewards"]), torch.zeros(8, dtype=torch.long)
    close(adv_fns.grpo(r, ids, eps=a["eps"]).advantages, a["grpo_adv_unbiased_std"])
    close(adv_fns.grpo_population_std(r, ids).advantages, a["grpo_adv_population_std"])
    close(adv_fns.grpo_no_std(r, ids).advantages, a["adv_no_std_(LUFFY/UPT/Dr.GRPO)"])
    # [num_groups, G] form gives the same numbers
    close(adv_fns.grpo(r[None, :]).advantages, a["grpo_adv_unbiased_std"])
    assert bool(adv_fns.dapo_keep_groups(r[None, :]).all()) is a["dapo_filter"]["kept"]


@pytest.mark.parametrize("case", ["all_correct", "all_wrong"])
def test_a_degenerate_groups_are_exactly_zero_and_dropped(case):
    deg = V["a_grpo_dapo_advantages"]["degenerate_groups"][case]
    out = adv_fns.grpo(t([deg["rewards"]]))
    assert torch.equal(out.advantages, t(deg["grpo_adv"]))  # exactly 0, not 1e-17
    assert out.metrics["reward/frac_zero_std"] == 1.0
    assert not adv_fns.dapo_keep_groups(t([deg["rewards"]])).any()


def test_a_singleton_group_uses_mean0_std1():
    s = V["a_grpo_dapo_advantages"]["singleton_group"]
    out = adv_fns.grpo(t(s["rewards"]), torch.zeros(1, dtype=torch.long))
    close(out.advantages, s["grpo_adv"])
    assert out.metrics["reward/frac_singleton"] == 1.0


# ---------------------------------------------------------------------------------------------------
# b: clipped surrogate (three cases), token-mean and seq-mean-token-mean


def b_inputs(dtype):
    b = V["b_dapo_dc_clipped_loss"]
    logp = leaf(b["logp_new"], dtype)
    inp = LossInputs(logprobs=logp, old_logprobs=t(b["logp_old"], dtype), advantages=t(b["advantages_per_seq"], dtype),
                     mask=t(b["mask"]).bool())
    return inp, logp


CASES = list(V["b_dapo_dc_clipped_loss"]["cases"])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", CASES)
def test_b_per_token_loss_and_grad(case, dtype):
    c = V["b_dapo_dc_clipped_loss"]["cases"][case]
    p = c["params"]
    inp, logp = b_inputs(dtype)
    term = build("term", "ppo_clip", eps_low=p["eps_low"], eps_high=p["eps_high"], clip_ratio_c=p["clip_c"])
    per_token = term(inp).per_token
    close(per_token, c["per_token_loss_(masked_positions_ignored)"], dtype)
    # each token's loss depends only on its own logp, so grad of the sum is the per-token derivative
    close(grad_of(per_token.sum(), logp), c["per_token_dloss_dlogp_(before_aggregation)"], dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
@pytest.mark.parametrize("case", CASES)
def test_b_aggregated_loss_and_grad(case, agg, dtype):
    c = V["b_dapo_dc_clipped_loss"]["cases"][case]
    p = c["params"]
    inp, logp = b_inputs(dtype)
    loss_fn = build_loss("ppo_clip", agg.replace("-", "_"), eps_low=p["eps_low"], eps_high=p["eps_high"],
                         clip_ratio_c=p["clip_c"])
    out = loss_fn(inp)
    close(out.loss, c[f"loss_{agg}"], dtype)
    close(grad_of(out.loss, logp), c[f"grad_{agg}"], dtype)


def test_b_registered_presets_match_cases():
    cases = V["b_dapo_dc_clipped_loss"]["cases"]
    inp, _ = b_inputs(torch.float64)
    close(build_loss("dapo_clip", "token_mean")(inp).loss, cases["dapo_dc_eps0.2_0.28_dual_c10"]["loss_token-mean"])
    close(build_loss("dapo_clip", "token_mean", clip_ratio_c=None)(inp).loss,
          cases["dapo_dc_eps0.2_0.28_no_dual"]["loss_token-mean"])
    close(build_loss("grpo_clip", "seq_mean_token_mean")(inp).loss,
          cases["grpo_sym_eps0.2_no_dual"]["loss_seq-mean-token-mean"])


def test_b_clip_metrics_count_the_branches():
    # DAPO_dc with dual clip on the vector: ratios (A=+1) 0.7 0.95 1.1 1.4 | (A=-0.5) 0.5 0.85 1.0 1.3 12.0
    # | (A=+0.25) 1.25 0.75 1.5. High clip (A>0, r>1.28): 1.4, 1.5 -> 2/12. Low clip (A<0, r<0.8):
    # 0.5 -> 1/12. Dual (A<0, r>10): 12.0 -> 1/12.
    inp, _ = b_inputs(torch.float64)
    m = build("term", "dapo_clip")(inp).metrics
    close(m["policy/clip_frac_high"], 2 / 12)
    close(m["policy/clip_frac_low"], 1 / 12)
    close(m["policy/clip_frac_dual"], 1 / 12)
    b = V["b_dapo_dc_clipped_loss"]
    valid = [r for row, keep in zip(b["ratio"], b["mask"]) for r, k in zip(row, keep) if k]
    close(m["policy/ratio_mean"], sum(valid) / len(valid))


# ---------------------------------------------------------------------------------------------------
# c: LUFFY


def c_inputs(dtype):
    c = V["c_luffy"]
    logp = leaf(c["logp_new"], dtype)
    inp = LossInputs(logprobs=logp, old_logprobs=t(c["logp_old"], dtype), advantages=t(c["advantages_no_std"], dtype),
                     mask=t(c["mask"]).bool(), is_demo=torch.tensor(c["is_off_policy"]), max_len=c["L_max"])
    return inp, logp


def test_c_luffy_advantages_include_expert_reward():
    c = V["c_luffy"]
    r = t(c["rewards"])
    close(adv_fns.grpo_no_std(r[None, :]).advantages, c["advantages_no_std"])
    close(adv_fns.grpo(r[None, :]).advantages, c["advantages_with_std_(paper_eq,_not_used_by_LUFFY_script)"])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("norm", "key"), [("lmax", "code_sum_div_Lmax"), ("token_mean", "paper_sum_div_Z")])
def test_c_luffy_loss_and_grad(norm, key, dtype):
    c = V["c_luffy"]
    inp, logp = c_inputs(dtype)
    out = luffy(inp, entropy_coef=0.0, norm=norm)  # the vector excludes the entropy bonus
    close(out.loss, c[f"loss_{key}"], dtype)
    close(grad_of(out.loss, logp), c[f"grad_{key}"], dtype)
    if norm == "lmax":  # per_token is each token's share: raw loss / L_max
        close(out.per_token * c["L_max"], c["per_token_loss"], dtype)
    close(out.metrics["policy/luffy_shaped_mean"], sum(c["expert_shaped_f(p)"]) / 4, dtype)
    close(out.metrics["policy/expert_token_frac"], 4 / 13, dtype)


def test_c_luffy_entropy_bonus_is_token_mean_over_all_tokens():
    c = V["c_luffy"]
    inp, _ = c_inputs(torch.float64)
    ent = torch.full((4, 4), 0.5, dtype=torch.float64)
    ent[0, 3] = 99.0  # padding: must be ignored
    inp = replace(inp, entropy=ent)
    out = luffy(inp, entropy_coef=0.001)
    close(out.loss, c["loss_code_sum_div_Lmax"] - 0.001 * 0.5)
    close(out.metrics["loss/entropy_bonus"], -0.001 * 0.5)


# ---------------------------------------------------------------------------------------------------
# d: SRFT


def test_d_srft_weights():
    d = V["d_srft"]
    w_sft, w_rl = compute_srft_weights(t(d["H"]))
    close(w_sft, d["w_sft=0.5*exp(-H)"])
    close(w_rl, d["w_rl=0.1*exp(+H)"])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_d_srft_toy_loss(dtype):
    toy = V["d_srft"]["toy"]
    c = V["c_luffy"]
    inp, _ = c_inputs(dtype)
    inp = replace(inp, rewards=t(c["rewards"], dtype), entropy=t(toy["token_entropy"], dtype))
    close(compute_seq_entropy(inp.entropy, inp.mask), toy["H_per_sequence"], dtype)
    out = srft(inp, entropy_coef=0.0)  # the vector excludes the entropy bonus
    close(out.metrics["loss/sft"], toy["L_sft_(expert_token_mean)"], dtype)
    close(out.metrics["loss/pg"], toy["L_pg_(off+pos+neg, sum/L_max)"], dtype)
    close(out.loss, toy["L_total_code"], dtype)
    close(out.metrics["policy/srft_w_sft_mean"], toy["w_sft_per_sequence"][3], dtype)  # the one expert row
    close(out.metrics["policy/srft_w_rl_mean"], toy["w_rl_per_sequence"][0], dtype)  # the one positive rollout
    # with the script's entropy bonus: valid-token entropies 1.5 + 4.2 + 0.4 + 2.0 = 8.1 over 13 tokens
    with_bonus = srft(inp)
    close(with_bonus.loss, toy["L_total_code"] - 0.001 * 8.1 / 13, dtype)


# ---------------------------------------------------------------------------------------------------
# e: UPT gate


@pytest.mark.parametrize(("gate", "key"), [(0, "decision_gate0_(Qwen_script)"), (2, "decision_gate2_(Llama_script)")])
def test_e_upt_gate_table(gate, key):
    table = V["e_upt_gate"]["table"]
    k = torch.tensor([row["num_correct"] for row in table])
    expected = [row[key] == "SFT" for row in table]
    assert adv_fns.upt_route(k, gate).tolist() == expected
    assert [bool(adv_fns.upt_route(row["num_correct"], gate)) for row in table] == expected


def test_e_upt_toy_batch():
    toy = V["e_upt_gate"]["toy_batch_gate0"]
    rewards = t([row["rewards"] for row in toy])  # [4, 8]
    is_sft = adv_fns.upt_route(rewards.sum(-1).long(), 0)
    assert is_sft.tolist() == [row["decision_gate0"] == "SFT" for row in toy]
    rl = adv_fns.grpo_no_std(rewards[~is_sft]).advantages.reshape(-1, 8)
    close(rl, [row["rl_advantages_no_std"] for row in toy if row["rl_advantages_no_std"] is not None])


@pytest.mark.parametrize("gate", [-1, 9, 1.5, True, None])
def test_e_upt_gate_rejects_bad_gates(gate):
    with pytest.raises(RetuInputError, match=r"0 <= gate <= group_size \(8\)"):
        adv_fns.upt_route(torch.tensor([0, 3]), gate)


# ---------------------------------------------------------------------------------------------------
# h: SFT, i: KL k3


SFT_KEYS = [("token_mean", "loss_global_token_mean"),
            ("seq_mean_token_mean", "loss_seq_mean_token_mean_(micro-batch of 1 per step)")]


@pytest.mark.parametrize(("agg", "key"), SFT_KEYS)
def test_h_sft(agg, key):
    h = V["h_sft"]
    logp = leaf(h["logp"], torch.float64)
    inp = LossInputs(logprobs=logp, old_logprobs=logp.detach(), advantages=torch.zeros(2, dtype=torch.float64),
                     mask=t(h["mask"]).bool())
    out = build_loss("sft_nll", agg)(inp)
    close(out.loss, h[key])
    if agg == "token_mean":
        close(grad_of(out.loss, logp), h["grad_global_token_mean_dlogp"])


def test_i_kl_k3_with_clamps():
    i = V["i_kl_k3"]
    close(compute_kl_k3(t(i["logp"]), t(i["ref_logp"])), i["k3_per_token_(clamped_to_[-10,10])"])

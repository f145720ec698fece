"""How much one RL update moves an SFT checkpoint's greedy accuracy, against perturbations of the same size.

One DAPO-style policy-gradient direction is computed on one batch (8 prompts x G 8 rollouts at
temperature 1 on 2-5-operation problems, group-normalised advantages, token-mean loss, groups whose
rewards are all equal dropped), written standalone here so the measurement does not depend on the
engine. The checkpoint is then moved, one perturbation at a time, by:

    adam step +lr / -lr     lr x sign(gradient) on every parameter (Adam's first step from fresh
                            state), along and against the RL direction
    random sign lr          lr x a random sign on every parameter (same size, no direction)
    gradient, norm N        the plain gradient scaled to total norm N (a 1M-parameter Adam step of lr
                            2e-4 has norm ~0.2)

and the greedy accuracy on the embedded task's 400 evaluation problems (1-5 operations) is printed
for each. A checkpoint whose accuracy falls far more under the RL directions than under random ones
sits in a minimum that is sharp along them: RL needs a smaller learning rate there (docs/main_job.md,
"Why a constant SFT learning rate").

    nice -n 10 .venv/bin/python benchmarks/rl_sharpness.py runs/pipeline/seed-0/arith/checkpoints/step-900
"""

from __future__ import annotations

import argparse
import random

import torch

from retu.engine.models import load_model
from retu.errors import RetuInputError
from retu.eval import evaluate, render_prompts
from retu.rewards.extract import extract_boxed
from retu.tasks.arith import make_splits

PROMPTS, GROUP, MAX_NEW = 8, 8, 64


def rl_gradient(model, tokenizer, rows: list[dict]) -> tuple[list[torch.Tensor], float]:
    """The policy-gradient of one rollout batch ([per parameter]) and the batch's mean reward."""
    enc = tokenizer(render_prompts(tokenizer, rows), return_tensors="pt", padding=True, add_special_tokens=False,
                    padding_side="left")
    with torch.no_grad():
        seqs = model.generate(**enc, do_sample=True, temperature=1.0, max_new_tokens=MAX_NEW, num_return_sequences=GROUP,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    width = enc["input_ids"].shape[1]
    completions = seqs[:, width:]  # [P*G, T]
    texts = tokenizer.batch_decode(completions, skip_special_tokens=True)
    answers = [r["answer"] for r in rows for _ in range(GROUP)]
    reward = torch.tensor([float((extract_boxed(t) or "").strip() == a) for t, a in zip(texts, answers)])
    grouped = reward.view(PROMPTS, GROUP)
    std = grouped.std(1, keepdim=True)
    advantages = ((grouped - grouped.mean(1, keepdim=True)) / (std + 1e-6)).view(-1)  # [P*G]
    is_eos = completions == tokenizer.eos_token_id
    last = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full((len(completions),), completions.shape[1] - 1))
    valid = torch.arange(completions.shape[1])[None] <= last[:, None]  # [P*G, T] through the first EOS
    mask = valid.float() * (std.view(-1) > 0).repeat_interleave(GROUP)[:, None].float()
    attention = torch.cat([enc["attention_mask"].repeat_interleave(GROUP, 0), valid.long()], 1)
    logits = model(input_ids=seqs, attention_mask=attention).logits[:, width - 1:-1]
    logprobs = torch.log_softmax(logits, -1).gather(-1, completions.unsqueeze(-1)).squeeze(-1)  # [P*G, T]
    model.zero_grad()
    (-(advantages[:, None] * logprobs * mask).sum() / mask.sum().clamp(min=1)).backward()
    return [p.grad.detach().clone() for p in model.parameters()], float(reward.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    splits = make_splits(args.seed, 5000, 200, 400, steps_train=[2, 3, 4, 5], steps_eval=[1, 2, 3, 4, 5])
    model, tokenizer = load_model(args.checkpoint)

    def accuracy(m) -> float:
        return evaluate(m, tokenizer, splits["eval"], max_new_tokens=MAX_NEW, batch_size=400).overall

    grad, reward = rl_gradient(model, tokenizer, random.Random(args.seed).sample(splits["train"], PROMPTS))
    norm = torch.sqrt(sum((g ** 2).sum() for g in grad))
    noise = torch.Generator().manual_seed(args.seed + 1)
    moves = {f"adam step +{args.lr:g}": [-args.lr * torch.sign(g) for g in grad],
             f"adam step -{args.lr:g}": [args.lr * torch.sign(g) for g in grad],
             f"random sign {args.lr:g}": [args.lr * torch.sign(torch.randn(g.shape, generator=noise)) for g in grad],
             **{f"gradient, norm {n:g}": [-n * g / norm for g in grad] for n in (0.05, 0.2)}}
    print(f"{args.checkpoint}: greedy accuracy {accuracy(model):.2f}%, batch reward {reward:.3f}, "
          f"gradient norm {norm:.3f}")
    print(f"{'perturbation':<24} accuracy (%)")
    for name, move in moves.items():
        moved, _ = load_model(args.checkpoint)
        with torch.no_grad():
            for p, d in zip(moved.parameters(), move):
                p.add_(d)
        print(f"{name:<24} {accuracy(moved):.2f}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except RetuInputError as exc:
        raise SystemExit(f"rl_sharpness: error: {exc}") from None

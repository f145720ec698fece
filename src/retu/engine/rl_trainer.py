"""The one GRPOTrainer subclass: retu's generate-and-score step and retu's loss on TRL's training loop.

TRL keeps everything else: the RepeatSampler (each prompt G times), reuse of one rollout batch for
`num_iterations` optimizer steps (retu's `rollout.updates_per_batch`), gradient accumulation, the
optimizer and schedule, generation (`_generate`: transformers or vLLM), the fused log-prob and entropy
forward (`_get_per_token_logps_and_entropies`, logits divided by the sampling temperature), and
mirroring logs to TensorBoard / W&B. Two methods are overridden:

1. `_generate_and_score_completions(inputs)` replaces TRL's whole method (called from
   `_prepare_inputs`: `generation_batch = self._generate_and_score_completions(generation_batch)`).
   Rows are built from groups by the pure helpers of `retu.engine.rollout` (expert rows, UPT gate,
   DAPO rounds), rewarded by the binary math-verify reward (`retu.rewards`, hard timeout) and given
   advantages by the algorithm's registry function. TRL's reward scaling is never used.
2. `compute_loss(model, inputs, ...)` replaces TRL's body `return self._compute_loss(model, inputs)`:
   the registry loss on `LossInputs`, with token/sequence normalisers counted over the whole optimizer
   step, so the micro-batch losses sum to the step's loss (TRL's `loss_is_scaled_for_ga = True`).

Which mechanisms run is read from `RolloutSettings` (the preset's `Sampling` data); nothing here
branches on an algorithm name. Metrics go into TRL's `_metrics["train"]`, which TRL averages over each
logging window and hands to the callbacks' `on_log`; cumulative tokens and FLOPs go into a
`ComputeLedger`.

Distributed runs (`accelerate launch`): each process generates and scores its block of every
generation round's prompts (`rollout.rank_block`), the round's groups are gathered to every process,
and every process runs the same DAPO accumulator on the gathered groups, so the batch is the one a
single process would build from those groups; each process then trains on its block of the batch's
groups. Advantages and the step-wide normalisers are computed over the whole batch, and the loss is
multiplied by the number of processes, because data parallelism averages the gradients over them.
Tokens, FLOPs and metrics are summed (or averaged) over processes per micro-batch.

Differs from TRL: prompts longer than the prompt limit are filtered before training by the recipe
(verl's `filter_overlong_prompts`), not truncated.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer
from trl.trainer.utils import pad

from retu.algos.registry import Algorithm
from retu.algos.types import LossInputs, LossOutput
from retu.engine.callbacks import TrainingDiverged
from retu.engine.rollout import (
    ComputeLedger,
    Group,
    GroupAccumulator,
    RolloutBatch,
    RolloutSettings,
    add_expert_rows,
    apply_upt_gate,
    compute_generation_flops,
    compute_training_flops,
    count_padding_rows,
    draw_prompt_indices,
    make_group,
    rank_block,
)
from retu.flops import ModelShape
from retu.rewards import score_completions

REWARD_TIMEOUT_S = 5.0


class RetuGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer with retu's rollout step and loss (see the module docstring).

    Args:
        algorithm: The built preset (`registry.build_algorithm`): advantage and loss callables.
        settings: How batches are built (group size, expert rows, gate, dynamic sampling).
        shape: Model shape for FLOPs accounting.
        ledger: Cumulative tokens and FLOPs, updated in place.
        **kwargs: Passed to `GRPOTrainer` (model, args, train_dataset with columns prompt, answer,
            solution; processing_class; callbacks). The reward source is always `math_verify_reward`.
    """

    def __init__(self, *, algorithm: Algorithm, settings: RolloutSettings, shape: ModelShape,
                 ledger: ComputeLedger, skip_grad_norm: float = 0.0, **kwargs):
        # TRL demands a reward source; the rollout step below scores with the same reward directly.
        super().__init__(reward_funcs=[math_verify_reward], **kwargs)
        self.algorithm = algorithm
        self.settings = settings
        self.shape = shape
        self.ledger = ledger
        self.skip_grad_norm = skip_grad_norm
        self._rollout_metrics: dict[str, float] = {}
        self._expert_cache: dict[str, list[int]] = {}

    # -----------------------------------------------------------------------------------------------
    # Generate and score

    def _generate_and_score_completions(self, inputs: list[dict]) -> dict:
        """Build one training batch of whole groups (replaces TRL's method of the same name).

        Args:
            inputs: The dataloader's generation batch: batch_prompts rows, each repeated G times in a
                row by TRL's RepeatSampler.

        Returns:
            The tensors `_prepare_inputs` shuffles and splits into micro-batches, plus the step-wide
            normalisers as 0-dim tensors (TRL's split keeps those whole).
        """
        s = self.settings
        rows = inputs[:: s.group_size]  # one row per prompt (this process's share of the sampler's)
        rows += self._draw_rows(s.gen_batch - s.batch_prompts, round_idx=0)
        acc = GroupAccumulator(target=s.batch_prompts, filter_groups=s.filter_groups,
                               max_rounds=s.max_rounds, on_exhausted=s.on_exhausted)
        stats: dict[str, list[float]] = defaultdict(list)
        while True:
            acc.add_round(self._sample_round(rows, stats))
            if not acc.needs_more():
                break
            rows = self._draw_rows(s.gen_batch, round_idx=acc.rounds)
        batch = acc.finish()  # the same on every process
        self.ledger.add(flops=compute_generation_flops(self.shape, batch.gen_lens))
        return self._to_model_inputs(batch, stats)

    def _draw_rows(self, count: int, round_idx: int) -> list[dict]:
        """This process's block of an extra round's prompts (DAPO), drawn by a pure function of
        (seed, step, round), so every process draws the same round."""
        if count <= 0:
            return []
        indices = draw_prompt_indices(count, len(self.train_dataset), seed=self.settings.seed,
                                      step=self.state.global_step, round_idx=round_idx)
        block = rank_block(count, self.accelerator.num_processes, self.accelerator.process_index)
        return [self.train_dataset[i] for i in indices[block]]

    def _sample_round(self, rows: list[dict], stats: dict[str, list[float]]) -> list[Group]:
        """One generation round: this process's groups, then every process's, in process order."""
        local: dict[str, list[float]] = defaultdict(list)
        parts = gather_object([(self._sample_groups(rows, local), dict(local))])  # one entry per process
        for _, part_stats in parts:
            for name, values in part_stats.items():
                stats[name] += values
        return [g for groups, _ in parts for g in groups]

    def _sample_groups(self, rows: list[dict], stats: dict[str, list[float]]) -> list[Group]:
        """Generate and reward G - n_expert rollouts per prompt; add expert rows; apply the gate."""
        s = self.settings
        n_gen = s.group_size - s.n_expert
        prompt_ids, completion_ids, *_ = self._generate([r["prompt"] for r in rows for _ in range(n_gen)])
        texts = self.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
        rewards = self._score(texts, [r["answer"] for r in rows for _ in range(n_gen)], stats)
        stats["completion_len"] += [float(len(c)) for c in completion_ids]
        groups = []
        for j, row in enumerate(rows):
            sl = slice(j * n_gen, (j + 1) * n_gen)
            group = make_group(prompt_ids[j * n_gen], completion_ids[sl], rewards[sl])
            if s.n_expert:
                group = add_expert_rows(group, *self._expert(row), s.n_expert)
            if s.upt_gate is not None:
                group = apply_upt_gate(group, *self._expert(row), s.upt_gate)
            groups.append(group)
        return groups

    def _score(self, texts: list[str], answers: list[str], stats: dict[str, list[float]]) -> list[float]:
        """Binary math-verify rewards; a timeout scores 0 and is counted, an unparseable gold is a bug."""
        results = score_completions(texts, answers, timeout_s=REWARD_TIMEOUT_S)
        bad = [a for a, r in zip(answers, results) if r.score is None]
        if bad:  # the recipe checks every gold answer before training; reaching here is a bug
            raise RuntimeError(f"gold answer {bad[0]!r} cannot be parsed by math-verify")
        stats["reward"] += [r.score for r in results]
        stats["timeouts"].append(float(sum(r.status == "timeout" for r in results)))
        return [r.score for r in results]

    def _expert(self, row: dict) -> tuple[list[int], float]:
        """Expert completion ids (solution + EOS, cut to the response limit, cached) and their reward
        (scored once by `retu.data.expert.build_expert_set`)."""
        if row["solution"] not in self._expert_cache:
            ids = self.processing_class(text=row["solution"], add_special_tokens=False)["input_ids"]
            self._expert_cache[row["solution"]] = (list(ids) + [self.processing_class.eos_token_id])[
                : self.max_completion_length]
        return self._expert_cache[row["solution"]], row["expert_reward"]

    def _to_model_inputs(self, batch: RolloutBatch, stats: dict[str, list[float]]) -> dict:
        """This process's rows of the batch as padded tensors, with advantages and old log-probs, and
        the step-wide counts over the whole batch (every process holds all of it)."""
        rows = [(g.prompt_ids, c, r, d, i) for i, g in enumerate(batch.groups)
                for c, r, d in zip(g.completions, g.rewards, g.is_demo)]
        prompts, completions, rewards, is_demo, group_ids = (list(x) for x in zip(*rows))
        adv = self.algorithm.advantage(torch.tensor(rewards), torch.tensor(group_ids))
        advantages = adv.advantages.float().tolist()  # [B], over the whole batch
        block = rank_block(len(batch.groups), self.accelerator.num_processes, self.accelerator.process_index)
        mine = [j for j, g in enumerate(group_ids) if block.start <= g < block.stop]
        # Padding rows repeat row 0 with an empty completion mask: they add nothing to any loss. A
        # process whose block is empty (a partial batch of fewer groups than processes) trains on them only.
        n_pad = count_padding_rows(len(mine), self.args.steps_per_generation) or (0 if mine else
                                                                                    self.args.steps_per_generation)
        pick = mine + [0] * n_pad
        keep = [1] * len(mine) + [0] * n_pad
        device = self.accelerator.device
        out = self._pad_tokens([prompts[j] for j in pick], [completions[j] for j in pick], keep)
        out["advantages"] = torch.tensor([advantages[j] * k for j, k in zip(pick, keep)], device=device)
        out["rewards"] = torch.tensor([rewards[j] * k for j, k in zip(pick, keep)], device=device)
        out["is_demo"] = torch.tensor([is_demo[j] and bool(k) for j, k in zip(pick, keep)], device=device)
        out["old_per_token_logps"] = self._old_logprobs(out)
        lens = [len(c) for c in completions]
        out["total_tokens"] = torch.tensor(float(sum(lens)), device=device)
        out["total_demo_tokens"] = torch.tensor(float(sum(n for n, d in zip(lens, is_demo) if d)), device=device)
        out["total_seqs"] = torch.tensor(float(sum(n > 0 for n in lens)), device=device)
        self._rollout_metrics = _rollout_metrics(batch, stats, adv.metrics)
        return out

    def _pad_tokens(self, prompts: list, completions: list, keep: list[int]) -> dict:
        """Left-padded prompts and right-padded completions with their masks, on the device."""
        device, pad_id = self.accelerator.device, self._tokenizer.pad_token_id
        prompt_t = [torch.tensor(p) for p in prompts]
        completion_t = [torch.tensor(c) for c in completions]
        completion_m = [torch.full((len(c),), k) for c, k in zip(completions, keep)]
        return {
            "prompt_ids": pad(prompt_t, pad_id, "left").to(device),
            "prompt_mask": pad([torch.ones_like(p) for p in prompt_t], 0, "left").to(device),
            "completion_ids": pad(completion_t, pad_id, "right").to(device),
            "completion_mask": pad(completion_m, 0, "right").to(device),
        }

    @torch.no_grad()
    def _old_logprobs(self, out: dict) -> torch.Tensor | None:
        """log pi_old under the parameters that generated the batch, or None when strictly on-policy.

        TRL's rule (`gradient_accumulation_steps % generate_every != 0`) with steps_per_generation =
        gradient_accumulation_steps: needed iff the batch serves more than one optimizer step.
        """
        if self.num_iterations == 1:
            return None  # compute_loss then uses logprobs.detach(): ratio == 1, as verl
        ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
        attention = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
        logps, _, _ = self._get_per_token_logps_and_entropies(
            self.model, ids, attention, out["completion_ids"].size(1), batch_size=self.args.per_device_train_batch_size)
        return logps

    # -----------------------------------------------------------------------------------------------
    # Optimizer step

    def _clip_grad_norm(self, model):
        """Clip as the Trainer does; with `skip_grad_norm`, drop the gradients of an update whose
        pre-clip norm is non-finite or above it, so `optimizer.step()` leaves every weight and
        moment untouched (verl's skip; the schedule still advances). Returns the pre-clip norm."""
        norm = super()._clip_grad_norm(model)
        if self.skip_grad_norm:
            value = float(norm)
            skipped = not math.isfinite(value) or value > self.skip_grad_norm
            if skipped:
                model.zero_grad(set_to_none=True)
            self._metrics["train"]["optim/skipped"].append(float(skipped))
        return norm

    # -----------------------------------------------------------------------------------------------
    # Loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The registry loss of one micro-batch (replaces `return self._compute_loss(model, inputs)`).

        Raises:
            TrainingDiverged: NaN or inf loss, naming the optimizer step.
        """
        if return_outputs:
            raise ValueError("RetuGRPOTrainer does not return outputs")
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attention = torch.cat([inputs["prompt_mask"], completion_mask], dim=1)
        logprobs, entropy, _ = self._get_per_token_logps_and_entropies(
            model, ids, attention, completion_ids.size(1), compute_entropy=True)
        old = inputs["old_per_token_logps"]
        out = self.algorithm.loss(LossInputs(
            logprobs=logprobs, old_logprobs=logprobs.detach() if old is None else old,
            advantages=inputs["advantages"], mask=completion_mask.bool(), is_demo=inputs["is_demo"],
            rewards=inputs["rewards"], entropy=entropy, max_len=self.max_completion_length,
            total_tokens=inputs["total_tokens"], total_demo_tokens=inputs["total_demo_tokens"],
            total_seqs=inputs["total_seqs"]))
        if not torch.isfinite(out.loss):
            raise TrainingDiverged(f"non-finite loss {out.loss.item()} at step {self.state.global_step + 1}; "
                                     "the last checkpoint is still usable")
        self._record_micro_batch(inputs, out)
        # Data parallelism averages gradients over processes; each process's loss is its share of the
        # whole batch's (global normalisers), so the sum over processes needs this factor.
        return out.loss * self.accelerator.num_processes

    def _record_micro_batch(self, inputs: dict, out: LossOutput) -> None:
        """Add the micro-batch's training work (3 forwards over its real rows, prompt + completion) to
        the ledger and queue its metrics, both over every process; TRL averages each metric over the
        logging window."""
        completion_len = inputs["completion_mask"].sum(-1)  # [B]
        seq_lens = (inputs["prompt_mask"].sum(-1) + completion_len)[completion_len > 0].tolist()
        local = (float(sum(seq_lens)), compute_training_flops(self.shape, seq_lens), out.loss.detach().item(),
                 {name: value.item() for name, value in out.metrics.items()})
        parts = gather_object([local])  # one entry per process
        self.ledger.add(tokens=sum(p[0] for p in parts), flops=sum(p[1] for p in parts))
        sink = self._metrics["train"]
        # Each micro-batch's loss is its share of the step's loss (global normalisers), so the
        # window mean times the micro-batches per step is the mean step loss.
        sink["loss/total"].append(sum(p[2] for p in parts) * self.args.gradient_accumulation_steps)
        for name, value in combine_metrics([p[3] for p in parts]).items():
            sink[name].append(value)
        for name, value in self._rollout_metrics.items():
            sink[name].append(value)


def math_verify_reward(completions: list, answer: list[str], **kwargs) -> list[float]:
    """retu's binary math-verify reward in TRL's reward-function form (conversational completions).

    >>> math_verify_reward([[{"role": "assistant", "content": "\\\\boxed{4}"}]], ["4"])
    [1.0]
    """
    texts = [c[-1]["content"] for c in completions]
    return [r.score or 0.0 for r in score_completions(texts, answer, timeout_s=REWARD_TIMEOUT_S)]


def combine_metrics(parts: list[dict[str, float]]) -> dict[str, float]:
    """One micro-batch's loss metrics from every process: `loss/<part>` shares add up, other metrics
    are the mean of the finite values (NaN when none is finite).

    >>> combine_metrics([{"loss/pg": 0.5, "policy/ratio_mean": 1.0}, {"loss/pg": 0.25, "policy/ratio_mean": float("nan")}])
    {'loss/pg': 0.75, 'policy/ratio_mean': 1.0}
    """
    out = {}
    for name in parts[0]:
        values = [p[name] for p in parts]
        finite = [v for v in values if math.isfinite(v)]
        if name.startswith("loss/"):
            out[name] = sum(values)
        else:
            out[name] = sum(finite) / len(finite) if finite else math.nan
    return out


def _rollout_metrics(batch: RolloutBatch, stats: dict[str, list[float]], adv_metrics: dict) -> dict[str, float]:
    """Metrics of one rollout: rewards and lengths over every generated rollout of every round."""
    rewards, lens = stats["reward"], stats["completion_len"]
    return {
        "reward/mean": sum(rewards) / len(rewards),
        "reward/frac_zero_std": batch.zero_std_groups / batch.groups_seen,
        "reward/batch_mean": float(adv_metrics["reward/mean"]),
        "reward/timeouts": sum(stats["timeouts"]),
        "completion/len_mean": sum(lens) / len(lens),
        "perf/gen_rounds": float(batch.rounds),
        "perf/groups_kept": float(len(batch.groups)),
        "perf/partial_batch": float(batch.partial),
    }

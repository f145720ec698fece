"""The one GRPOTrainer subclass: TRL's training loop running `retu.engine.rl_step`.

TRL keeps the loop (RepeatSampler, `num_iterations` updates per rollout batch, gradient accumulation,
optimizer, schedule), generation and the log-prob forward. `RetuGRPOTrainer` overrides three methods:
1. `_generate_and_score_completions`, whole (TRL's `_prepare_inputs` calls it): `rl_step.build_batch`.
2. `compute_loss`: `return self._compute_loss(model, inputs)` becomes the registry loss of
   `rl_step.build_loss_inputs`, times the processes (data parallelism averages their gradients).
3. `_clip_grad_norm`: the Trainer's clip, then `optim.skip_grad_norm`'s skip.
Every use of a TRL private name is in this file, marked with the TRL method it stands in for.
"""

from __future__ import annotations

import math

import torch
from trl import GRPOTrainer

from retu.algos.registry import Algorithm
from retu.distributed import gather
from retu.engine import rl_step
from retu.engine.callbacks import TrainingDiverged
from retu.engine.compute import ComputeLedger
from retu.flops import ModelShape


class RetuGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer running retu's RL step and loss.

    Args:
        algorithm, plan: The built preset (`registry.build_algorithm`) and the step's `rl_step.plan_step`.
        shape, ledger: Model shape (FLOPs); cumulative tokens and FLOPs, updated in place.
        skip_grad_norm: Skip an update whose pre-clip gradient norm is non-finite or above it; 0 = never.
        **kwargs: GRPOTrainer's; train_dataset has columns prompt, answer, solution and expert_reward.
    """

    def __init__(self, *, algorithm: Algorithm, plan: rl_step.StepPlan, shape: ModelShape, ledger: ComputeLedger,
                 skip_grad_norm: float = 0.0, **kwargs):
        # TRL demands a reward function; the step scores with the same reward itself.
        super().__init__(reward_funcs=[rl_step.math_verify_reward], **kwargs)
        self.algorithm, self.plan, self.ledger, self.skip_grad_norm = algorithm, plan, ledger, skip_grad_norm
        self.rollout_metrics: dict[str, float] = {}  # of the batch being trained on
        self.hooks = rl_step.StepHooks(
            generate=lambda prompts: self._generate(prompts)[:2],  # TRL's `_generate`, as its own step calls it
            gather=gather, old_logprobs=self.old_logprobs, tokenizer=self.processing_class, shape=shape,
            max_completion_len=self.max_completion_length, micro_batches=self.args.steps_per_generation,
            world=self.accelerator.num_processes, rank=self.accelerator.process_index, device=self.accelerator.device)

    def _generate_and_score_completions(self, inputs: list[dict]) -> dict:
        """One rollout batch of whole groups, as model inputs (`rl_step.build_batch`)."""
        batch = rl_step.build_batch(inputs, self.train_dataset, plan=self.plan, hooks=self.hooks,
                                    advantage=self.algorithm.advantage, step=self.state.global_step)
        self.ledger.add(flops=batch.gen_flops)
        self.rollout_metrics = batch.metrics
        return batch.inputs

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The registry loss of one micro-batch, its work added to the ledger and its metrics to the log.
        Raises TrainingDiverged for a NaN or inf loss, naming the optimizer step."""
        if return_outputs:
            raise ValueError("RetuGRPOTrainer does not return outputs")
        logprobs, entropy, _ = self._get_per_token_logps_and_entropies(  # as TRL's `_compute_loss` calls it
            model, *rl_step.forward_inputs(inputs), compute_entropy=True)
        out = self.algorithm.loss(rl_step.build_loss_inputs(inputs, logprobs, entropy, self.max_completion_length))
        if not torch.isfinite(out.loss):
            raise TrainingDiverged(f"non-finite loss {out.loss.item()} at step {self.state.global_step + 1}; "
                                   "the last checkpoint is still usable")
        record = rl_step.record_micro_batch(inputs, out, self.hooks, grad_accum=self.args.gradient_accumulation_steps)
        self.ledger.add(tokens=record.tokens, flops=record.flops)
        for name, value in [*record.metrics.items(), *self.rollout_metrics.items()]:
            self._metrics["train"][name].append(value)  # as TRL's `_compute_loss` logs (`log` averages them)
        return out.loss * self.accelerator.num_processes

    def _clip_grad_norm(self, model):
        """The Trainer's clip; an update whose pre-clip norm (returned) is non-finite or above `skip_grad_norm`
        loses its gradients, so `optimizer.step()` leaves weights and moments untouched (verl's skip)."""
        norm = super()._clip_grad_norm(model)
        if self.skip_grad_norm:
            skipped = not math.isfinite(float(norm)) or float(norm) > self.skip_grad_norm
            if skipped:
                model.zero_grad(set_to_none=True)
            self._metrics["train"]["optim/skipped"].append(float(skipped))  # as TRL's `_compute_loss` logs
        return norm

    @torch.no_grad()
    def old_logprobs(self, inputs: dict) -> torch.Tensor | None:
        """log pi_old [B, T] under the generating weights; None when the batch serves one update (TRL's rule)."""
        if self.num_iterations == 1:
            return None
        return self._get_per_token_logps_and_entropies(  # as TRL's `_generate_and_score_completions` calls it
            self.model, *rl_step.forward_inputs(inputs), batch_size=self.args.per_device_train_batch_size)[0]

    def sync_vllm_weights(self) -> None:
        """Load the current weights into the vLLM engine unless loaded at this step (for evaluations)."""
        if self.state.global_step != self._last_loaded_step:  # TRL's guard in `_generate_single_turn`
            self.vllm_generation.sync_weights()
            self._last_loaded_step = self.state.global_step

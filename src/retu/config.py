"""Run configuration: frozen dataclass sections, their rules, and `load_config`.

Each field's `metadata["help"]` is its only documentation. Every rule that reads only config values
is here: a section checks its own fields (`__post_init__`), `RunCfg` the rules across sections of its
kind (`check_sft`, `check_rl`). Unknown keys, wrong types and broken rules raise RetuInputError
naming the file and the key (and listing valid keys) before anything trains; reading YAML and
overrides is `retu.config_loader`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from retu.config_loader import build_dataclass, parse_overrides, read_config_file, set_path
from retu.errors import RetuInputError
from retu.phases import DELTA_SEVERE, DELTA_STABLE, PATIENCE
from retu.tasks.arith import SLIP_AT, check_slip_at

ARITH = "arith"  # data.train / val / eval: the embedded task (retu.tasks.arith) instead of a file
REPORT_TO = ("none", "tensorboard", "wandb")  # log.report_to (retu.engine.run.MIRRORS implements each)


def _f(default, help: str, **kw):  # noqa: A002 - mirrors dataclasses.field's metadata usage
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


def built_model_name(name: str) -> tuple[str, str] | None:
    """("tiny" or "base", size) for a `tiny:<size>` or `base:<size>` name (a model retu builds from
    `model.seed`), else None.

    >>> built_model_name("base:1m"), built_model_name("/ckpt/qwen")
    (('base', '1m'), None)
    """
    kind, _, size = str(name).partition(":")
    return (kind, size) if kind in ("tiny", "base") and size else None


@dataclass(frozen=True)
class ModelCfg:
    """Which model to train; see each field's help."""

    name_or_path: str = _f("base:1m", "tiny:<size>, base:<size>, smollm2-135m-instruct, a local HF dir or a hub id")
    dtype: str = _f("float32", "float32 (CPU), bfloat16 or float16 (GPU)")
    seed: int = _f(0, "seed of tiny/base model construction")
    lora_r: int = _f(0, "LoRA rank through PEFT (0 = full fine-tuning); checkpoints then hold the adapter")
    lora_alpha: int = _f(32, "LoRA scale numerator (scale = alpha / r)")
    lora_dropout: float = _f(0.0, "LoRA dropout")
    lora_targets: str = _f("all-linear", "LoRA target modules: all-linear or a comma list, e.g. q_proj,v_proj")
    attn_implementation: str = _f("sdpa", "attention kernel: sdpa, eager, or flash_attention_2 (CUDA with the "
                                  "flash-attn package installed)")

    def __post_init__(self):
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise RetuInputError(f"model.dtype must be float32, bfloat16 or float16, got '{self.dtype}'")
        if self.lora_r < 0 or self.lora_alpha < 1 or not 0 <= self.lora_dropout < 1:
            raise RetuInputError("model.lora_r must be >= 0, model.lora_alpha >= 1 and model.lora_dropout in [0, 1)")
        if self.attn_implementation not in ("sdpa", "eager", "flash_attention_2"):
            raise RetuInputError(f"model.attn_implementation must be sdpa, eager or flash_attention_2, got "
                                 f"'{self.attn_implementation}'")


def _at_least(section: str, minimum: float, **values: float) -> None:
    """Raise RetuInputError naming the first `section.key` whose value is below `minimum`."""
    for key, value in values.items():
        if value < minimum:
            raise RetuInputError(f"{section}.{key} must be >= {minimum:g}, got {value}")


@dataclass(frozen=True)
class DataCfg:
    """Where problems and expert trajectories come from; see each field's help."""

    train: str = _f(ARITH, "training set: 'arith' (embedded task) or a JSONL path")
    val: str | None = _f(None, "SFT validation set of expert trajectories (JSONL); 'arith' builds one")
    eval: str | None = _f(None, "held-out problems for periodic evaluation (JSONL); 'arith' builds one")
    arith_n_train: int = _f(5000, "embedded task: training problems")
    arith_n_val: int = _f(200, "embedded task: validation problems")
    arith_n_eval: int = _f(400, "embedded task: evaluation problems")
    arith_max_steps: int = _f(5, "embedded task: difficulty levels 1..N operations")
    arith_train_steps: list = _f([1, 2, 3, 4, 5], "embedded task: difficulty levels in the training split")
    arith_eval_steps: list = _f([1, 2, 3, 4, 5], "embedded task: difficulty levels in the eval split")
    arith_noise: float = _f(0.0, "embedded task: share of train and validation trajectories with one wrong step")
    arith_sign_slip: float = _f(0.0, "embedded task: probability that the expert drops the minus sign of a running "
                                "result of arith_slip_at or below (a systematic error in train and validation "
                                "trajectories)")
    arith_slip_at: int = _f(SLIP_AT, "embedded task: the running results (this or below) whose sign the expert "
                                     "can drop")
    max_prompt_len: int = _f(128, "prompt tokens kept (left-truncated)")
    max_response_len: int = _f(128, "response tokens generated / trained at most")
    keep_overlong_expert: bool = _f(False, "LUFFY/SRFT/UPT: keep expert trajectories over max_response_len "
                                    "(truncated) instead of dropping them (the paper drops them)")
    seed: int = _f(0, "seed of the embedded task's splits")

    def __post_init__(self):
        _at_least("data", 1, arith_n_train=self.arith_n_train, arith_max_steps=self.arith_max_steps,
                  max_prompt_len=self.max_prompt_len, max_response_len=self.max_response_len)
        _at_least("data", 0, arith_n_val=self.arith_n_val, arith_n_eval=self.arith_n_eval)
        if not 0.0 <= self.arith_sign_slip <= 1.0:
            raise RetuInputError(f"data.arith_sign_slip is a probability in [0, 1], got {self.arith_sign_slip}")
        check_slip_at(self.arith_slip_at, "data.arith_slip_at")


@dataclass(frozen=True)
class OptimCfg:
    """Optimizer and schedule; see each field's help."""

    lr: float = _f(2e-3, "peak learning rate")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    beta1: float = _f(0.9, "AdamW beta1")
    beta2: float = _f(0.95, "AdamW beta2")
    warmup_ratio: float = _f(0.0, "share of steps with linear warm-up")
    schedule: str = _f("constant", "constant or cosine (after the warm-up)")
    min_lr_ratio: float = _f(0.0, "cosine: the final learning rate as a share of lr (0 = decay to 0)")
    decay_steps: int = _f(0, "cosine: steps after the warm-up over which lr decays, then holds at min_lr_ratio "
                             "(0 = decay until max_steps)")
    grad_clip: float = _f(1.0, "gradient-norm clip")
    max_steps: int = _f(1000, "optimizer steps")
    batch_size: int = _f(32, "sequences (SFT) or prompts (RL) per optimizer step")
    grad_accum: int = _f(1, "micro-batches per optimizer step (SFT: batch_size must divide by it; RL: batch_size "
                             "x rollout.group_size)")
    skip_grad_norm: float = _f(0.0, "RL: skip an update whose pre-clip gradient norm is non-finite or above "
                               "this (0 = never; UPT's Qwen script: 80); needs grad_clip > 0")
    gradient_checkpointing: bool | None = _f(None, "recompute activations in the backward pass (less memory, more "
                                             "compute); null = on for SFT on a GPU, off otherwise")
    torch_compile: bool = _f(False, "compile the model with torch.compile (the HF Trainer's torch_compile)")
    liger_kernel: bool = _f(False, "Liger's Triton layer kernels through TRL's use_liger_kernel (CUDA, and "
                            "pip install -e '.[gpu]')")

    def __post_init__(self):
        if self.schedule not in ("constant", "cosine"):
            raise RetuInputError(f"optim.schedule must be constant or cosine, got '{self.schedule}'")
        if not 0.0 <= self.min_lr_ratio < 1.0 or (self.min_lr_ratio and self.schedule != "cosine"):
            raise RetuInputError(f"optim.min_lr_ratio must be in [0, 1) and needs optim.schedule=cosine, got "
                                 f"{self.min_lr_ratio} with {self.schedule}")
        if self.decay_steps < 0 or (self.decay_steps and self.schedule != "cosine"):
            raise RetuInputError(f"optim.decay_steps must be >= 0 and needs optim.schedule=cosine, got "
                                 f"{self.decay_steps} with {self.schedule}")
        if self.lr <= 0 or self.max_steps <= 0 or self.batch_size <= 0 or self.grad_accum <= 0:
            raise RetuInputError("optim.lr, optim.max_steps, optim.batch_size and optim.grad_accum must be > 0")
        if self.skip_grad_norm < 0 or (self.skip_grad_norm and not self.grad_clip):
            raise RetuInputError(f"optim.skip_grad_norm ({self.skip_grad_norm}) must be >= 0 and needs "
                                 f"optim.grad_clip > 0 (the norm is measured by the clip)")


@dataclass(frozen=True)
class SftCfg:
    """SFT-only settings; see each field's help."""

    val_every: int = _f(50, "steps between validation losses (and checkpoints, if save_every is 0)")
    stop_on_saturation: bool = _f(False, "stop once the validation loss has saturated (retu.phases)")
    patience: int = _f(PATIENCE, "validation points without a delta_stable improvement that mean saturation")
    delta_stable: float = _f(DELTA_STABLE, "relative band above L_min that counts as Stable")
    delta_severe: float = _f(DELTA_SEVERE, "relative excess beyond which overfitting is Severe")
    padding_free: bool = _f(False, "train on each micro-batch's sequences joined into one row without padding "
                            "(TRL's padding-free collator); the losses and FLOPs counts do not change")

    def __post_init__(self):
        _at_least("sft", 1, val_every=self.val_every, patience=self.patience)


@dataclass(frozen=True)
class RolloutCfg:
    """RL generation settings; see each field's help."""

    group_size: int = _f(8, "samples per prompt G (on-policy rows)")
    gen_batch: int | None = _f(None, "DAPO: prompts per generation round (default 2 x optim.batch_size)")
    max_gen_rounds: int = _f(10, "DAPO: generation rounds allowed to fill a batch (0 = unlimited)")
    on_exhausted: str = _f("partial", "DAPO when rounds run out: 'error' or 'partial' (train on what was kept)")
    temperature: float = _f(1.0, "sampling temperature")
    top_p: float = _f(1.0, "nucleus sampling threshold")
    updates_per_batch: int = _f(2, "optimizer steps per rollout batch (>1 lets the clip act)")
    n_expert: int = _f(1, "LUFFY/SRFT: expert rows per prompt")
    upt_gate: int = _f(0, "UPT: SFT on the expert iff correct rollouts <= gate (0..G)")
    engine: str = _f("auto", "generation engine: auto (vllm on a CUDA machine with vLLM installed, paged on "
                     "one without, hf on CPU), hf (transformers generate), paged (transformers continuous "
                     "batching through TRL), vllm (TRL colocate) or vllm_server (TRL server mode)")
    paged_config: dict = _f({}, "paged: keyword arguments of transformers' ContinuousBatchingConfig, e.g. "
                            "{num_blocks: 64, max_batch_tokens: 512} (TRL's default max_memory_percent: 0.5)")
    vllm_server_url: str | None = _f(None, "vllm_server: base URL of `trl vllm-serve` (default: TRL's "
                                     "http://0.0.0.0:8000)")
    vllm_gpu_memory: float = _f(0.3, "vllm (colocate): share of GPU memory vLLM may take")

    def __post_init__(self):
        if self.group_size < 1:
            raise RetuInputError(f"rollout.group_size must be >= 1, got {self.group_size}")
        if self.temperature <= 0:
            raise RetuInputError(f"rollout.temperature must be > 0 (rollouts are sampled), got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise RetuInputError(f"rollout.top_p must be in (0, 1], got {self.top_p}")
        _at_least("rollout", 1, updates_per_batch=self.updates_per_batch)
        _at_least("rollout", 0, n_expert=self.n_expert, max_gen_rounds=self.max_gen_rounds)
        if self.gen_batch is not None:
            _at_least("rollout", 1, gen_batch=self.gen_batch)
        if self.on_exhausted not in ("error", "partial"):
            raise RetuInputError(f"rollout.on_exhausted must be 'error' or 'partial', got '{self.on_exhausted}'")
        if self.engine not in ("auto", "hf", "paged", "vllm", "vllm_server"):
            raise RetuInputError(f"rollout.engine must be auto, hf, paged, vllm or vllm_server, got '{self.engine}'")
        if not 0 <= self.upt_gate <= self.group_size:
            raise RetuInputError(f"rollout.upt_gate must be in 0..{self.group_size} (group_size), got {self.upt_gate}")
        if not 0.0 < self.vllm_gpu_memory <= 1.0:
            raise RetuInputError(f"rollout.vllm_gpu_memory must be in (0, 1], got {self.vllm_gpu_memory}")


@dataclass(frozen=True)
class LossCfg:
    """Which algorithm (a retu.algos preset), the parts of it replaced and its hyperparameters overridden."""

    algo: str = _f("dapo_dc", "grpo, dapo_d, dapo_dc, luffy, srft or upt")
    advantage: str | None = _f(None, "advantage estimator replacing the preset's (`retu list`: advantage); null = "
                               "the preset's")
    term: str | None = _f(None, "per-token loss term replacing the preset's (`retu list`: term; grpo, dapo_d and "
                          "dapo_dc only), from its own default hyperparameters; null = the preset's")
    aggregation: str | None = _f(None, "loss aggregation replacing the preset's (`retu list`: aggregation; grpo, "
                                 "dapo_d and dapo_dc only), as verl's loss_agg_mode; null = the preset's")
    kwargs: dict = _f({}, "overrides of the loss hyperparameters (the preset's, or a replaced term's own defaults), "
                          "e.g. {eps_high: 0.3}")

    def __post_init__(self):
        named = {"advantage": self.advantage, "term": self.term, "aggregation": self.aggregation}
        if all(name is None for name in named.values()):
            return  # nothing to look up (the registry loads torch); loss.algo is checked with the RL rules
        from retu.algos.registry import ALGORITHMS, REGISTRY

        for key, name in named.items():
            if name is not None and name not in REGISTRY[key]:
                raise RetuInputError(f"loss.{key} must be one of {', '.join(REGISTRY[key])}, got '{name}'")
        preset = ALGORITHMS.get(self.algo)
        if preset is not None and preset.agg is None and (self.term or self.aggregation):
            pairs = ", ".join(name for name, p in ALGORITHMS.items() if p.agg is not None)
            raise RetuInputError(f"loss.term and loss.aggregation replace parts of {pairs}; loss.algo={self.algo} "
                                 "aggregates itself (set them to null; its normaliser is loss.kwargs.norm)")

    def algorithm(self):
        """What a run trains with (a retu.algos.registry.Algorithm): the preset `algo`, its parts replaced
        by `advantage`, `term` and `aggregation` (`registry.resolve_preset`), its hyperparameters
        overridden by `kwargs`.

        Raises:
            RetuInputError: an unknown name, or a kwarg the term or method does not take.
        """
        from retu.algos.registry import build_algorithm, resolve_preset

        preset = resolve_preset(self.algo, advantage=self.advantage, term=self.term, agg=self.aggregation)
        return build_algorithm(self.algo, preset, **self.kwargs)


@dataclass(frozen=True)
class EvalCfg:
    """Periodic and final evaluation; see each field's help."""

    every: int = _f(20, "steps between evaluations (0 = only at start and end)")
    temperature: float = _f(0.0, "0 = greedy; the paper's benchmarks use 0.7")
    samples: int = _f(1, "samples per problem (avg@k)")
    max_new_tokens: int = _f(128, "tokens generated per answer")
    batch_size: int = _f(64, "problems per generation batch")

    def __post_init__(self):
        _at_least("eval", 0, every=self.every, temperature=self.temperature)
        _at_least("eval", 1, samples=self.samples, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size)


@dataclass(frozen=True)
class LogCfg:
    """Where and how often results are written; see each field's help."""

    run_dir: str = _f("runs/default", "run directory (metrics.jsonl, checkpoints/, report/)")
    log_every: int = _f(10, "steps between train records")
    save_every: int = _f(0, "steps between checkpoints (0 = at every validation / evaluation)")
    keep_checkpoints: int = _f(0, "checkpoints kept (0 = all)")
    report_to: str = _f("none", "mirror metrics to: none, tensorboard or wandb")
    profile_step: int = _f(0, "optimizer step to run under torch.profiler: a `profile` event (top kernels or ops, "
                              "device busy share) and profile-step<N>.txt (0 = none; retu.engine.profiling)")

    def __post_init__(self):
        _at_least("log", 1, log_every=self.log_every)
        _at_least("log", 0, save_every=self.save_every, keep_checkpoints=self.keep_checkpoints,
                  profile_step=self.profile_step)
        if self.report_to not in REPORT_TO:
            raise RetuInputError(f"log.report_to must be one of {', '.join(REPORT_TO)}, got '{self.report_to}'")


@dataclass(frozen=True)
class RunCfg:
    """A whole run: one section per concern, plus the global seed."""

    kind: str = _f("sft", "sft or rl")
    seed: int = _f(0, "global seed (data order, sampling, init)")
    model: ModelCfg = field(default_factory=ModelCfg, metadata={"help": "model section"})
    data: DataCfg = field(default_factory=DataCfg, metadata={"help": "data section"})
    optim: OptimCfg = field(default_factory=OptimCfg, metadata={"help": "optimizer section"})
    sft: SftCfg = field(default_factory=SftCfg, metadata={"help": "SFT section"})
    rollout: RolloutCfg = field(default_factory=RolloutCfg, metadata={"help": "RL rollout section"})
    loss: LossCfg = field(default_factory=LossCfg, metadata={"help": "RL loss section"})
    eval: EvalCfg = field(default_factory=EvalCfg, metadata={"help": "evaluation section"})
    log: LogCfg = field(default_factory=LogCfg, metadata={"help": "logging section"})

    def __post_init__(self):
        if self.kind not in KIND_RULES:
            raise RetuInputError(f"kind must be 'sft' or 'rl', got '{self.kind}'")
        if self.log.profile_step > self.optim.max_steps:
            raise RetuInputError(f"log.profile_step ({self.log.profile_step}) is after the last step "
                                 f"(optim.max_steps = {self.optim.max_steps}); use 1..{self.optim.max_steps}, or 0")
        KIND_RULES[self.kind](self)


# ---------------------------------------------------------------------------------------------------
# Rules across sections: each run kind checks what it reads (an SFT run never reads data.eval, nor an
# RL run data.val). Rules that need the machine (processes, packages, files, tokenizer) stay with
# the command that meets them.


def is_arith_split(source: str | None, train: str) -> bool:
    """Whether data.val / data.eval (`source`) reads the embedded task's split (retu.engine.datasets)."""
    return source == ARITH or (source is None and train == ARITH)


def check_sft(cfg: RunCfg) -> None:
    """The rules of an SFT run; raise RetuInputError on the first broken one."""
    o, d = cfg.optim, cfg.data
    if o.skip_grad_norm:
        raise RetuInputError("optim.skip_grad_norm applies to RL runs only (UPT's update skip); set it to 0")
    if o.batch_size % o.grad_accum:
        raise RetuInputError(f"optim.batch_size ({o.batch_size}) must be divisible by optim.grad_accum "
                             f"({o.grad_accum})")
    if d.val is None and d.train != ARITH:
        raise RetuInputError("data.val is empty: SFT needs held-out expert trajectories for its validation loss "
                             "(a JSONL path, or 'arith')")
    if is_arith_split(d.val, d.train) and not d.arith_n_val:
        raise RetuInputError("data.arith_n_val must be >= 1: SFT needs held-out expert trajectories for its "
                             "validation loss")


def check_rl(cfg: RunCfg) -> None:
    """The rules of an RL run; raise RetuInputError on the first broken one.

    Builds the loss with retu.algos.registry (which loads torch; an RL run needs it anyway), so an
    unknown name or kwarg of the loss section fails here.
    """
    from retu.algos.registry import ALGORITHMS

    o, r, d, loss = cfg.optim, cfg.rollout, cfg.data, cfg.loss
    if (o.batch_size * r.group_size) % o.grad_accum:
        raise RetuInputError(f"RL rows per step (optim.batch_size x rollout.group_size = "
                             f"{o.batch_size * r.group_size}) must be divisible by optim.grad_accum ({o.grad_accum})")
    if d.eval is None and d.train != ARITH:
        raise RetuInputError("RL needs a held-out evaluation set: set data.eval (a JSONL path or 'arith')")
    if is_arith_split(d.eval, d.train) and not d.arith_n_eval:
        raise RetuInputError("data.arith_n_eval must be >= 1: RL needs a held-out evaluation set")
    if loss.algo not in ALGORITHMS:
        raise RetuInputError(f"loss.algo must be one of {', '.join(ALGORITHMS)}, got '{loss.algo}'")
    try:
        preset = loss.algorithm().preset  # kwargs must be the term's (or method's) own
    except RetuInputError as exc:
        raise RetuInputError(f"loss.kwargs: {exc}") from None
    if preset.sampling.demos_per_group and r.n_expert >= r.group_size:
        raise RetuInputError(f"rollout.n_expert ({r.n_expert}) must be < rollout.group_size ({r.group_size}) "
                             "so each group keeps at least one rollout")
    if {**preset.kwargs, **loss.kwargs}.get("beta_kl", 0.0):
        raise RetuInputError("loss.kwargs.beta_kl: a KL penalty needs reference log-probs, which retu rl does not "
                             "compute yet; set it to 0 (as every RETU run)")


KIND_RULES = {"sft": check_sft, "rl": check_rl}  # RunCfg.kind -> its rules


# ---------------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path | None = None, overrides: list[str] = (), **fixed) -> RunCfg:
    """Read a YAML config (or the defaults), apply `a.b=value` overrides and `fixed` top-level keys."""
    src = "defaults" if path is None else str(path)
    raw = read_config_file(path, "run")
    for key, value in parse_overrides(list(overrides)):
        set_path(raw, key, value)
    raw.update(fixed)
    try:
        return build_dataclass(RunCfg, raw, "", src)
    except RetuInputError as exc:
        if str(exc).startswith(src):
            raise
        raise RetuInputError(f"{src}: {exc}") from None


# The settings that define what an evaluation measures: two runs agreeing on these evaluate the same
# problems the same way (the held-out splits are drawn first, so the training size does not matter).
EVAL_KEYS = ("data.eval", "data.seed", "data.arith_n_val", "data.arith_n_eval", "data.arith_eval_steps",
             "eval.temperature", "eval.samples", "eval.max_new_tokens")


def config_value(config: dict, dotted: str):
    """The value at `a.b` of a config as plain data (`to_dict`, or a config.yaml); None when absent."""
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def to_dict(cfg) -> dict:
    """The resolved config as plain data (for run_start records and config.yaml)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: RunCfg, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
    tmp.replace(path)

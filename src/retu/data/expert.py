"""Expert data for the synchronized methods (LUFFY, SRFT, UPT): one expert trajectory per prompt.

The paper's MIX37K plays this role: prompts each matched with one expert solution. `build_expert_set`
makes such a set from any problem set with solutions, as the authors' data pipeline does:

* a trajectory longer than the response limit (solution tokens + EOS) is dropped by default and
  counted (`keep_overlong=True` keeps it; the RL engine then trains on its first `max_response_len`
  tokens, as verl truncates);
* a trajectory whose answer the verifier rejects is kept, as the authors kept them, and counted, so
  the caller can warn: LUFFY/SRFT then push it down (its advantage is <= 0), UPT still imitates it;
* each kept row gains `expert_reward` (the verifier's 0/1 on the text the model will see).

Reference: arXiv 2512.11470 section 3 (MIX37K); spec/ALGORITHMS.md sections 6-9 (expert rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retu.errors import RetuInputError
from retu.rewards import score_completions

EXAMPLES_SHOWN = 3  # ids of dropped / rejected rows quoted in the summary


@dataclass(frozen=True)
class ExpertReport:
    """What `build_expert_set` did.

    Attributes:
        total: Rows read.
        kept: Rows in the expert set.
        overlong: Rows whose trajectory exceeds the response limit (dropped unless kept on request).
        rejected: Kept rows whose expert answer the verifier rejects (kept, counted).
        overlong_ids: Ids of the first overlong rows.
        rejected_ids: Ids of the first rejected rows.
        max_response_len: The limit applied, in tokens.
        dropped_overlong: Whether overlong rows were dropped.
    """

    total: int
    kept: int
    overlong: int
    rejected: int
    overlong_ids: tuple
    rejected_ids: tuple
    max_response_len: int
    dropped_overlong: bool

    def summary(self) -> str:
        """One line, e.g. `5000 prompts: 4990 kept, 10 longer than 128 tokens dropped (...), 0 rejected`."""
        verb = "dropped" if self.dropped_overlong else "kept, truncated"
        over = f"{self.overlong} longer than {self.max_response_len} tokens {verb}"
        if self.overlong_ids:
            over += f" (e.g. {', '.join(map(str, self.overlong_ids))})"
        rej = f"{self.rejected} with an answer the verifier rejects"
        if self.rejected_ids:
            rej += f" (kept, as the authors did; e.g. {', '.join(map(str, self.rejected_ids))})"
        return f"{self.total} prompts: {self.kept} kept, {over}, {rej}"

    def to_dict(self) -> dict:
        """JSON-safe counts (the RL run's `expert_data` event)."""
        return {"total": self.total, "kept": self.kept, "overlong": self.overlong, "rejected": self.rejected,
                "max_response_len": self.max_response_len, "dropped_overlong": self.dropped_overlong}


def count_expert_tokens(solutions: Sequence[str], tokenizer) -> list[int]:
    """Response tokens of each expert trajectory: its solution tokens plus one EOS."""
    if not solutions:
        return []
    ids = tokenizer(list(solutions), add_special_tokens=False)["input_ids"]
    return [len(x) + 1 for x in ids]


def build_expert_set(rows: Sequence[dict], tokenizer, max_response_len: int, *, keep_overlong: bool = False,
                     source: str = "data", timeout_s: float = 5.0) -> tuple[list[dict], ExpertReport]:
    """Rows with one scored expert trajectory each, overlong ones dropped and counted.

    Args:
        rows: Problem rows with `problem`, `answer` and `solution` (the expert trajectory).
        tokenizer: The policy's tokenizer (lengths are counted in its tokens).
        max_response_len: Response token limit of the RL run.
        keep_overlong: Keep trajectories over the limit (they are truncated when trained).
        source: Name of the rows' file, for errors.
        timeout_s: Verifier timeout per trajectory (a timeout counts as rejected).

    Returns:
        (kept rows, each with `expert_reward` 0.0 or 1.0, in input order; ExpertReport).

    Raises:
        RetuInputError: A row without a solution, or no row left after dropping.
    """
    for i, row in enumerate(rows):
        if not row.get("solution"):
            raise RetuInputError(f"{source} row {i + 1} (id {row.get('id')}): missing field 'solution' "
                                 "(LUFFY, SRFT and UPT need one expert trajectory per prompt)")
    lengths = count_expert_tokens([r["solution"] for r in rows], tokenizer)
    overlong = [i for i, n in enumerate(lengths) if n > max_response_len]
    drop = set() if keep_overlong else set(overlong)
    kept_idx = [i for i in range(len(rows)) if i not in drop]
    if not kept_idx:
        raise RetuInputError(f"{source}: every expert trajectory is longer than {max_response_len} tokens "
                             "(data.max_response_len); raise the limit or keep them with data.keep_overlong_expert")
    texts = [_truncated_text(rows[i]["solution"], tokenizer, max_response_len) for i in kept_idx]
    scores = score_completions(texts, [rows[i]["answer"] for i in kept_idx], timeout_s=timeout_s)
    kept = [{**rows[i], "expert_reward": float(s.score or 0.0)} for i, s in zip(kept_idx, scores)]
    rejected = [r.get("id", i) for i, r in zip(kept_idx, kept) if r["expert_reward"] != 1.0]
    report = ExpertReport(
        total=len(rows), kept=len(kept), overlong=len(overlong), rejected=len(rejected),
        overlong_ids=tuple(rows[i].get("id", i) for i in overlong[:EXAMPLES_SHOWN]),
        rejected_ids=tuple(rejected[:EXAMPLES_SHOWN]), max_response_len=max_response_len,
        dropped_overlong=not keep_overlong)
    return kept, report


def _truncated_text(solution: str, tokenizer, max_response_len: int) -> str:
    """The solution as the policy is trained on it: at most `max_response_len - 1` tokens before EOS."""
    ids = tokenizer(solution, add_special_tokens=False)["input_ids"]
    if len(ids) + 1 <= max_response_len:
        return solution
    return tokenizer.decode(ids[: max_response_len], skip_special_tokens=True)

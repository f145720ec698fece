"""Pretraining text for the tiny base model: arithmetic facts, worked chains, direct-answer chats.

The base model (`retu.engine.models.base_model`) stands in for a pretrained LM on the embedded task
(operands 0..9, `+`/`-` left to right, "Compute 7+5-3+9." -> `\\boxed{18}`). Its corpus gives it the
priors a pretrained LM brings to math, and nothing more:

1. Facts: lines like `12-3=9`, half one-step facts (operands 0..9), half steps of random task
   chains, so the facts the task needs (running results -45..54) are in the text.
2. Chains: worked sums in the task's running-result form (`23+5=28`, `28-3=25`, then
   `23+5-3=25`), always starting outside 0..9, so no task problem ever appears with its answer.
3. Chats: ChatML turns asking a one-step task problem ("Compute 7+5.", as the task's rows put it),
   answered directly with `\\boxed{12}`; the trainer puts the loss on the assistant turn only, as
   instruction data would (without that, 600 steps do not teach a 1M model to read the prompt).

So the base model knows the facts, the step format and the answer format, and in chat it answers in
one shot: right on some one-step problems (its facts are half-learned after a minute), and on longer
problems only when the first operation happens to give the answer. Supervised fine-tuning on the
task's step-by-step solutions then has to connect the pieces. Multi-step task problems never appear,
so held-out evaluation sets of 2+ steps stay clean.

Everything here is pure Python (`random.Random`), so the corpus is a function of the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from retu.data.chat import INSTRUCTION, format_user
from retu.tasks import arith

__all__ = ["INSTRUCTION", "Chain", "chat_messages", "format_prompt", "sample_chain", "sample_documents"]

# Document mix (probabilities of facts, chains, chats); chats are what the base answers in.
DOC_WEIGHTS = {"facts": 0.4, "chains": 0.2, "chats": 0.4}
FACTS_PER_DOC = 8
# First operands of chains: never 0..9, so no task problem (first operand 0..9) appears with its steps.
OFF_TASK_FIRSTS = tuple(range(-20, 0)) + tuple(range(10, 41))


@dataclass(frozen=True)
class Chain:
    """An integer expression evaluated left to right.

    Attributes:
        operands: the numbers, first one any integer, the rest 0..9.
        ops: '+' or '-', one per operand after the first.

    Example:
        >>> chain = Chain((7, 5, 3, 9), ("+", "-", "+"))
        >>> chain.expression, chain.steps, chain.answer
        ('7+5-3+9', ['7+5=12', '12-3=9', '9+9=18'], 18)
    """

    operands: tuple[int, ...]
    ops: tuple[str, ...]

    @property
    def expression(self) -> str:
        """`7+5-3+9` (no spaces, as in the task)."""
        return str(self.operands[0]) + "".join(op + str(x) for op, x in zip(self.ops, self.operands[1:]))

    @property
    def steps(self) -> list[str]:
        """One line per operation with the running result: `7+5=12`, `12-3=9`, `9+9=18`."""
        lines, value = [], self.operands[0]
        for op, x in zip(self.ops, self.operands[1:]):
            new = value + x if op == "+" else value - x
            lines.append(f"{value}{op}{x}={new}")
            value = new
        return lines

    @property
    def answer(self) -> int:
        """The value of the expression."""
        return int(self.steps[-1].rsplit("=", 1)[1])


def sample_chain(rng: random.Random, n_ops: int, firsts: tuple[int, ...] = tuple(range(10))) -> Chain:
    """Draw a chain with `n_ops` operations; the first operand from `firsts` (task: 0..9)."""
    first = rng.choice(firsts)
    return Chain((first, *(rng.randrange(10) for _ in range(n_ops))), tuple(rng.choice("+-") for _ in range(n_ops)))


def format_prompt(chain: Chain) -> str:
    """The task's user message, as its rows give it: `Compute 7+5-3+9.` (no instruction line)."""
    return format_user(f"Compute {chain.expression}.", arith.INSTRUCTION)


def chat_messages(chain: Chain, response: str) -> list[dict[str, str]]:
    """A user turn asking for `chain` and an assistant turn with `response`."""
    return [{"role": "user", "content": format_prompt(chain)}, {"role": "assistant", "content": response}]


def _facts_doc(rng: random.Random) -> str:
    # Half one-step facts (what a one-step problem needs), half random steps of random task chains
    # (the running results -45..54 that longer problems need).
    def fact() -> str:
        chain = sample_chain(rng, 1 if rng.random() < 0.5 else rng.randint(2, 5))
        return rng.choice(chain.steps)

    return "\n".join(fact() for _ in range(FACTS_PER_DOC))


def _chain_doc(rng: random.Random) -> str:
    chain = sample_chain(rng, rng.randint(1, 5), OFF_TASK_FIRSTS)
    return "\n".join([*chain.steps, f"{chain.expression}={chain.answer}"])


def _chat_doc(rng: random.Random) -> list[dict[str, str]]:
    # One-step task problems only: there are just 200 and they are never held out (DESIGN.md 6).
    chain = sample_chain(rng, 1)
    return chat_messages(chain, f"\\boxed{{{chain.answer}}}")


_DOC_BUILDERS = {"facts": _facts_doc, "chains": _chain_doc, "chats": _chat_doc}


def sample_documents(rng: random.Random, n: int) -> list[str | list[dict[str, str]]]:
    """Draw `n` pretraining documents in the `DOC_WEIGHTS` mix.

    Args:
        rng: the only source of randomness (the corpus is a function of its seed).
        n: number of documents.

    Returns:
        Plain-text documents (str) and chats (lists of `{"role", "content"}` messages, to be
        rendered with the tokenizer's chat template).
    """
    kinds = rng.choices(list(DOC_WEIGHTS), weights=list(DOC_WEIGHTS.values()), k=n)
    return [_DOC_BUILDERS[kind](rng) for kind in kinds]

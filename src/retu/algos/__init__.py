"""Pure torch loss math: advantages, per-token policy terms, aggregations, SFT, hybrid methods.

Everything is looked up by name in `retu.algos.registry` (see its docstring and docs/algorithms.md).
"""

from retu.algos.advantages import dapo_keep_groups, upt_route
from retu.algos.registry import ALGORITHMS, build, build_algorithm, build_loss, list_variants
from retu.algos.types import AdvantageOutput, LossInputs, LossOutput, TermOutput

__all__ = ["ALGORITHMS", "AdvantageOutput", "LossInputs", "LossOutput", "TermOutput", "build", "build_algorithm",
           "build_loss", "dapo_keep_groups", "list_variants", "upt_route"]

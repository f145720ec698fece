"""Rewards: the math-verify wrapper (hard timeout, any thread) and answer extraction."""

from retu.rewards.extract import extract_boxed
from retu.rewards.verifier import (
    STATUSES,
    MathVerifier,
    RewardResult,
    check_gold,
    count_statuses,
    default_verifier,
    score_completions,
    verify_math,
)

__all__ = [
    "STATUSES",
    "MathVerifier",
    "RewardResult",
    "check_gold",
    "count_statuses",
    "default_verifier",
    "extract_boxed",
    "score_completions",
    "verify_math",
]

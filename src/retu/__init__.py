"""retu: expert-trajectory post-training with compute accounting and Plasticity-Ceiling analysis.

The analysis API imports numpy/scipy only; training modules (torch, TRL) load on first use.
"""

from retu.flops import estimate_flops, flops_per_token, step_flops

__version__ = "0.1.0"

__all__ = ["estimate_flops", "flops_per_token", "step_flops", "__version__"]

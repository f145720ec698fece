"""retu: expert-trajectory post-training with compute accounting and Plasticity-Ceiling analysis.

The analysis API below imports numpy/scipy only; training modules (torch, TRL) load on first use.
"""

from retu.flops import estimate_flops, flops_per_token, step_flops
from retu.phases import detect_phases, is_saturated, online_phase
from retu.scaling import correlate, decompose, fit_ceiling, load_curves

__version__ = "0.1.0"

__all__ = ["__version__", "correlate", "decompose", "detect_phases", "estimate_flops", "fit_ceiling",
           "flops_per_token", "is_saturated", "load_curves", "online_phase", "step_flops"]

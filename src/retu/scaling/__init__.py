"""Plasticity-Ceiling analysis: ceiling fits of RL curves, the A_post = P_sft + PL_rl table, correlation.

Imports numpy/scipy only (no torch).
"""

from retu.scaling.curves import Curve, load_curves
from retu.scaling.decompose import Correlation, DecompositionTable, correlate, decompose
from retu.scaling.fit import CeilingFit, FitOptions, detect_collapse, fit_ceiling

__all__ = ["CeilingFit", "Correlation", "Curve", "DecompositionTable", "FitOptions", "correlate",
           "decompose", "detect_collapse", "fit_ceiling", "load_curves"]

"""Plasticity-Ceiling analysis: ceiling fits of RL curves, the A_post = P_sft + PL_rl table, correlation.

Imports numpy/scipy only (no torch). `AUTHORS_CURVES` is the paper authors' Qwen2.5-7B curves, shipped
as package data with their provenance (`AUTHORS_CURVES / "README.md"`); `retu fit --authors` fits them.
"""

from pathlib import Path

from retu.scaling.curves import Curve, load_curves
from retu.scaling.decompose import Correlation, DecompositionTable, correlate, decompose
from retu.scaling.fit import CeilingFit, FitOptions, detect_collapse, fit_ceiling

AUTHORS_CURVES = Path(__file__).parent / "authors"

__all__ = ["AUTHORS_CURVES", "CeilingFit", "Correlation", "Curve", "DecompositionTable", "FitOptions", "correlate",
           "decompose", "detect_collapse", "fit_ceiling", "load_curves"]

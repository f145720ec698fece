"""Plasticity-Ceiling analysis: ceiling fits of RL curves, the A_post = P_sft + PL_rl table, correlation.

Imports numpy/scipy only (no torch). `AUTHORS_CURVES` is the paper authors' Qwen2.5-7B curves, shipped
as package data with their provenance (`AUTHORS_CURVES / "README.md"`); `retu fit --authors` fits them.
`fit_ceiling` fits a finished curve; `predict_ceiling` a run still going (`retu fit --upto`), optionally
with a prior from finished siblings (`build_sibling_prior`); `estimate_live_ceiling` and `find_hopeless`
serve training and pipelines.
"""

from pathlib import Path

from retu.scaling.curves import Curve, load_curves
from retu.scaling.decompose import Correlation, DecompositionTable, correlate, decompose
from retu.scaling.early import predict_ceiling
from retu.scaling.fit import CeilingFit, FitOptions, detect_collapse, fit_ceiling
from retu.scaling.live import LiveCeiling, estimate_live_ceiling, find_hopeless
from retu.scaling.prior import SiblingPrior, build_sibling_prior, sibling_prior_for

AUTHORS_CURVES = Path(__file__).parent / "authors"

__all__ = ["AUTHORS_CURVES", "CeilingFit", "Correlation", "Curve", "DecompositionTable", "FitOptions", "LiveCeiling",
           "SiblingPrior", "build_sibling_prior", "correlate", "decompose", "detect_collapse", "estimate_live_ceiling",
           "find_hopeless", "fit_ceiling", "load_curves", "predict_ceiling", "sibling_prior_for"]

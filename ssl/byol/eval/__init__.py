"""Evaluation of frozen backbones through their feature interface."""

from .features import extract_features
from .linear import ProbeResult, few_shot_probe, fit_softmax_regression, linear_probe, standardize

__all__ = ["ProbeResult", "extract_features", "few_shot_probe", "fit_softmax_regression", "linear_probe", "standardize"]

"""Evaluation of frozen backbones through their feature interface."""

from .features import extract_features
from .knn import knn_accuracy, knn_classify
from .linear import ProbeResult, few_shot_probe, fit_softmax_regression, linear_probe, standardize
from .plots import plot_embedding_map, plot_training_curves

__all__ = [
    "ProbeResult", "extract_features", "few_shot_probe", "fit_softmax_regression", "knn_accuracy", "knn_classify",
    "linear_probe", "plot_embedding_map", "plot_training_curves", "standardize",
]

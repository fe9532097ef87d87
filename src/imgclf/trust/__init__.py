"""Predictions users can trust: calibration metrics and temperature, the OOD score and its threshold.

Arrays in, arrays out (``calibration``: ECE / NLL / Brier, temperature, reliability and coverage
curves; ``ood``: the kNN + max-logit score of unknown inputs); the bundle stores what they fit.
"""
from .calibration import brier, calibration_metrics, coverage_curve, ece, fit_temperature, nll, reliability, softmax
from .ood import OodDetector, fit_ood, knn_distance, knn_to, l2_rows

__all__ = ["OodDetector", "brier", "calibration_metrics", "coverage_curve", "ece", "fit_ood", "fit_temperature",
           "knn_distance", "knn_to", "l2_rows", "nll", "reliability", "softmax"]

"""What int8 costs: the test figures of an int8 bundle beside those of the same model in fp32."""
from __future__ import annotations

import logging
from typing import Any

from .metrics import Metrics

log = logging.getLogger(__name__)
INT8_WARN_DROP = 0.01  # warn when int8 costs more than 1 point of (class-averaged) accuracy


def int8_only(int8: Metrics) -> dict[str, Any]:
    """The int8 section of metrics.json when no fp32 reference was made."""
    return {"precision": "int8", "int8_accuracy": int8.accuracy, "int8_class_avg_accuracy": int8.class_avg_accuracy}


def int8_report(int8: Metrics, fp32: Metrics) -> dict[str, Any]:
    """fp32 accuracies, what int8 costs, and a warning (also logged) when that is over 1 point."""
    out = {"fp32_accuracy": fp32.accuracy, "fp32_class_avg_accuracy": fp32.class_avg_accuracy,
           "int8_accuracy_drop": fp32.accuracy - int8.accuracy,
           "int8_class_avg_accuracy_drop": fp32.class_avg_accuracy - int8.class_avg_accuracy}
    drop = max(out["int8_accuracy_drop"], out["int8_class_avg_accuracy_drop"])
    if drop > INT8_WARN_DROP:
        msg = (f"int8 loses {100 * drop:.1f} points of accuracy against fp32 on the test split "
               f"(int8 {100 * int8.accuracy:.1f}% vs fp32 {100 * fp32.accuracy:.1f}%, class-averaged "
               f"{100 * int8.class_avg_accuracy:.1f}% vs {100 * fp32.class_avg_accuracy:.1f}%); "
               "consider engine.precision = 'fp32' or more engine.calibration_images")
        log.warning("warning: %s", msg)
        out["int8_warning"] = msg
    return out

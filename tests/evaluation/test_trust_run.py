"""A run's trust figures: calibration before/after and the coverage curve in metrics.json, both plots in report.html."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def test_metrics_and_report_carry_calibration_and_coverage(trained_run: Path):
    m = json.loads((trained_run / "metrics.json").read_text())
    cal = m["calibration"]
    for when in ("before", "after"):
        assert set(cal[when]) == {"ece", "nll", "brier"} and all(0.0 <= v for v in cal[when].values())
        assert sum(cal["reliability"][when]["count"]) == m["n_test"]
    assert cal["after"]["nll"] <= cal["before"]["nll"] + 1e-6  # the temperature was fit to lower the log-loss
    cov = m["coverage"]
    assert cov["coverage"][0] == 1.0 and cov["accuracy"][0] == np.float64(m["accuracy"]).round(5)
    assert 0.0 < m["unknown"]["accepted"] <= 1.0
    bundle = json.loads((trained_run / "model" / "bundle.json").read_text())
    assert bundle["trust"]["file"] == "trust.npz" and (trained_run / "model" / "trust.npz").is_file()
    assert json.loads((trained_run / "model" / "manifest.json").read_text())["files"]["trust.npz"]
    assert (trained_run / "reliability.png").is_file() and (trained_run / "coverage.png").is_file()
    report = (trained_run / "report.html").read_text()
    assert 'alt="reliability"' in report and 'alt="coverage"' in report and "ECE" in report

"""Evaluation: test metrics (metrics.py), figures and the HTML report (report.py), int8 against fp32 (int8.py)."""

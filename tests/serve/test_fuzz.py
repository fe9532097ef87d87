"""Schemathesis fuzzes every operation of /openapi.json on a real server: no 5xx, no bug hit."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from serve_helpers import metric, running, server_errors
import web


@pytest.mark.slow
def test_fuzzing_the_openapi_spec_finds_no_server_error(predictor, tmp_path):
    exe = Path(sys.executable).parent / "schemathesis"
    assert exe.exists(), "schemathesis is a dev dependency: pip install -e '.[dev]'"
    with running(predictor) as (url, _):
        p = subprocess.run(
            [str(exe), "run", url + "/openapi.json", "--checks", "not_a_server_error", "--phases", "examples,coverage,fuzzing",
             "--max-examples", "8", "--max-time", "30", "--seed", "1", "--workers", "1", "--request-timeout", "30",
             "--no-shrink", "--warnings", "off"],
            capture_output=True, text=True, timeout=150, cwd=tmp_path)
        text = web.get(url + "/metrics").text
    report = p.stdout[-3000:] + p.stderr[-2000:]
    assert p.returncode == 0, report
    assert "passed" in p.stdout and "failed" not in p.stdout.split("SUMMARY")[-1], report
    assert server_errors(text) == 0
    assert metric(text, "imgclf_requests_total", endpoint="/predict", method="POST", status="200") \
        + metric(text, "imgclf_requests_total", endpoint="/predict", method="POST", status="400") > 0

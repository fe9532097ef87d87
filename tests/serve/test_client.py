"""``imgclf call``: per-call round trip = server time + overhead, and the prediction."""
from __future__ import annotations

import re

import pytest
from serve_helpers import jpeg, running

from imgclf.cli import main

TOKEN = "call-token"


@pytest.fixture(scope="module")
def secured(predictor):
    with running(predictor, token=TOKEN) as (url, _):
        yield url


@pytest.mark.parametrize("path", ["", "/predict", "/score"])
def test_call_prints_round_trip_server_and_overhead(secured, tmp_path, capsys, predictor, path):
    image = tmp_path / "x.jpg"
    image.write_bytes(jpeg(4))
    assert main(["call", secured + path, str(image), "-n", "3", "--token", TOKEN]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("median of 3:")
    expected = predictor.predict([image.read_bytes()])[0]["label"]
    for i, line in enumerate(lines[:3], 1):
        m = re.match(r"call (\d+): round trip ([\d.]+) ms = server ([\d.]+) ms \+ overhead (-?[\d.]+) ms -> (\S+) \(([\d.]+)\)$", line)
        assert m, line
        rt, server, overhead = (float(m.group(k)) for k in (2, 3, 4))
        assert int(m.group(1)) == i and m.group(5) == expected
        assert 0 < server <= rt and overhead == pytest.approx(rt - server, abs=0.11)


def test_call_reports_auth_and_connection_failures(secured, tmp_path, capsys):
    image = tmp_path / "x.jpg"
    image.write_bytes(jpeg(4))
    assert main(["call", secured, str(image), "-n", "1"]) == 2
    err = capsys.readouterr().err
    assert "401" in err and "--token" in err
    assert main(["call", "http://127.0.0.1:9", str(image), "-n", "1"]) == 2
    assert "cannot reach" in capsys.readouterr().err
    assert main(["call", secured + "/v2/models/imgclf/infer", str(image)]) == 2
    assert "/predict and /score" in capsys.readouterr().err

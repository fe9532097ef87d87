"""The commands, run as a user runs them (through ``imgclf.cli.main``, in-process); and a download killed with
SIGKILL, then resumed (a real process)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from cliutil import cli
import typer
from acquire_helpers import encode, jpeg, make_image
from datagen import shared_engines
from typer.testing import CliRunner

from imgclf.acquire.download import download_url_list
from imgclf.acquire.fetch import FetchOptions
from imgclf.acquire.providers import PROVIDERS
from imgclf.acquire.urls import url_file_stem
from imgclf.cli import acquire as acquire_cli
from imgclf.data.annotations import current_state
from imgclf.data.images import decode_image
from imgclf.util.files import read_csv



def test_download_command(server, tmp_path, monkeypatch, capsys):
    urls = tmp_path / "urls.tsv"
    urls.write_text(f"cat\t{server.url('/img/1.jpg')}\ndog\t{server.url('/png/2')}\nbroken line\n"
                    f"dog\t{server.url('/notfound')}\n")
    monkeypatch.setenv("IMGCLF_DATA_DIR", str(tmp_path / "data"))
    r = cli(capsys, "download", str(urls), "--dataset", "pets", "--allow-private", "-q", "--retries", "0")
    assert r.returncode == 0, r.stderr
    ds = tmp_path / "data" / "datasets" / "pets"
    assert r.stdout.splitlines() == ["ok 2, exists 0, failed 1 (http_404: 1), malformed lines 1",
                                     f"report: {ds / 'download_report.csv'}"]
    assert "skipped line 3: expected 2 tab-separated fields" in r.stderr
    assert sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*.*")) == sorted(
        [f"cat/{url_file_stem(server.url('/img/1.jpg'))}.jpg", f"dog/{url_file_stem(server.url('/png/2'))}.png",
         "download_report.csv"])

    # without --allow-private the loopback server is refused before any connection
    hits = sum(server.hits.values())
    r = cli(capsys, "download", str(urls), "--images", str(tmp_path / "other"), "-q")
    assert r.stdout.splitlines()[0] == "ok 0, exists 0, failed 3 (private_address: 3), malformed lines 1"
    assert sum(server.hits.values()) == hits


def test_bad_input_is_one_line_error(tmp_path, capsys):
    urls = tmp_path / "urls.tsv"
    urls.write_text("")
    r = cli(capsys, "download", str(urls), "--dataset", "../escape")
    assert r.returncode == 2 and r.stderr.startswith("error: invalid dataset name") and "Traceback" not in r.stderr
    r = cli(capsys, "download", str(tmp_path / "missing.tsv"), "--dataset", "x")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_scrape_command_offline_says_no_provider(tmp_path, monkeypatch, capsys):
    for name, value in {"IMGCLF_DATA_DIR": str(tmp_path), "DDGS_PROXY": "http://127.0.0.1:9", "BRAVE_SEARCH_API_KEY": ""}.items():
        monkeypatch.setenv(name, value)
    r = cli(capsys, "scrape", "--items", "blouse,shirt", "--attributes", "striped", "--dataset", "tex")
    assert r.returncode == 2
    assert r.stdout.startswith("note: Images found by search belong to their authors.")
    assert r.stderr.startswith("error: no image-search provider is reachable (brave: no API key")
    assert "hint: check the internet connection" in r.stderr


def test_scrape_command_with_a_plugin_provider(server, tmp_path):
    class Plugin:
        name = "plugin"

        def problem(self) -> str:
            return ""

        def search(self, query: str, max_results: int) -> list[str]:
            return [server.url(f"/img/{sum(map(ord, query)) * 10 + k}.jpg") for k in range(max_results)]

    app = typer.Typer()
    acquire_cli.register(app)
    with PROVIDERS.registered("plugin", Plugin):
        r = CliRunner().invoke(app, ["scrape", "--items", "vest", "--attributes", "striped,leopard", "--per-query", "2",
                                     "--provider", "plugin", "--label-by", "item_attribute", "--images", str(tmp_path),
                                     "--allow-private", "-q"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("note: Images found by search belong to their authors.")
    assert lines[1] == f"plugin: 2 queries, 4 distinct URLs -> {tmp_path / 'scrape_urls.tsv'}"
    assert lines[2] == "ok 4, exists 0, failed 0"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["vest_leopard", "vest_striped"]


def test_dedup_command(tmp_path, capsys):
    ds = tmp_path / "ds"
    (ds / "a").mkdir(parents=True)
    (ds / "b").mkdir()
    img = make_image(3, (160, 120))
    (ds / "a" / "x.jpg").write_bytes(encode(img, "JPEG", quality=95))
    (ds / "b" / "y.jpg").write_bytes(encode(img.resize((80, 60)), "JPEG", quality=80))
    (ds / "b" / "z.jpg").write_bytes(encode(make_image(4, (160, 120)), "JPEG"))
    r = cli(capsys, "dedup", "--images", str(ds), "-q", "--set", "data.duplicate_distance=0", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("3 images: ") and current_state(ds) == {}
    r = cli(capsys, "dedup", "--images", str(ds), "-q")  # default distance: data.duplicate_distance = 10
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "3 images: 1 duplicate groups (exact 0, near 1, by features 0); 1 images excluded in annotations.csv",
        f"report: {ds.resolve() / 'dedup_report.html'} (dedup_report.csv)"]
    assert {p: a.action for p, a in current_state(ds).items()} == {"b/y.jpg": "exclude"}


@pytest.mark.slow
def test_killed_download_resumes_without_partial_files(server, tmp_path):
    n = 24

    def slow_image(h, q):  # half the body, a pause, the rest: a kill lands mid-transfer
        body = jpeg(100 + int(q["path"].rsplit("/", 1)[1].split(".")[0]))
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[: len(body) // 2])
        h.wfile.flush()
        time.sleep(0.25)
        h.wfile.write(body[len(body) // 2:])

    server.routes["/slowimg/"] = slow_image
    urls = [server.url(f"/slowimg/{i}.jpg") for i in range(n)]
    tsv = tmp_path / "urls.tsv"
    tsv.write_text("".join(f"slow\t{u}\n" for u in urls))
    ds = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "imgclf", "download", str(tsv), "--images", str(ds),
                             "--allow-private", "--workers", "2", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while len(list((ds / "slow").glob("*.jpg")) if (ds / "slow").is_dir() else []) < 6:
            assert time.monotonic() - t0 < 30 and proc.poll() is None, "download did not progress"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()

    names = {f"{url_file_stem(u)}.jpg": u for u in urls}
    present = sorted(p.name for p in (ds / "slow").iterdir())
    assert 6 <= len(present) < n
    assert set(present) <= set(names)  # no temp or partial file in the class folder
    for name in present:
        decode_image(ds / "slow" / name)  # every visible file is complete
    assert not (ds / "download_report.csv").exists()  # the killed run never reached its report

    server.hits.clear()
    res = download_url_list(tsv, ds, FetchOptions(allow_private=True), workers=4, progress=False)
    fetched = {server.url(p) for p in server.hits}
    assert fetched == {u for name, u in names.items() if name not in present}  # only the missing ones
    assert all(v == 1 for v in server.hits.values())
    assert res.summary() == f"ok {n - len(present)}, exists {len(present)}, failed 0"
    assert len(list((ds / "slow").iterdir())) == n and not (ds / ".incoming").exists()
    assert [r["status"] for r in read_csv(ds / "download_report.csv")].count("exists") == len(present)


@pytest.mark.slow
def test_dedup_command_with_cnn_features(tmp_path, data_root):
    # pooled CNN features are non-negative, so at threshold 0 every pair is "similar": the wiring
    # through the real featurizer must put all three images (dhash-distinct) in one features group
    shared_engines(data_root)
    ds = tmp_path / "ds"
    for i, d in enumerate(["a", "b", "c"]):
        (ds / d).mkdir(parents=True)
        (ds / d / f"{i}.jpg").write_bytes(encode(make_image(20 + i, (160, 120)), "JPEG"))
    app = typer.Typer()
    acquire_cli.register(app)
    r = CliRunner().invoke(app, ["dedup", "--images", str(ds), "--features", "--feature-threshold", "0", "-q"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("3 images: 1 duplicate groups (exact 0, near 0, by features 1); 2 images excluded")
    assert len(current_state(ds)) == 2  # which one is kept depends on the JPEG sizes

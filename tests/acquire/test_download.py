"""Downloads against a real loopback server: each hazard gives its own outcome in the report."""
from __future__ import annotations

import hashlib
import time

import pytest
from acquire_helpers import CAP, jpeg

from imgclf.acquire.download import download_entries, download_url_list
from imgclf.acquire.fetch import FetchError, FetchOptions, fetch
from imgclf.acquire.urls import UrlEntry, parse_url_list
from imgclf.data.images import decode_image
from imgclf.util.files import read_csv

FAST = FetchOptions(connect_timeout=2, read_timeout=0.5, deadline=2.0, max_bytes=CAP, retries=2, backoff=0.01,
                    allow_private=True)


def stem(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


@pytest.mark.slow
def test_hazard_catalogue(server, tmp_path):
    u = server.url
    cases = {  # url -> (status, reason)
        u("/img/1.jpg"): ("ok", ""),
        u("/png/2"): ("ok", ""),  # PNG sent as application/octet-stream: judged by decoding
        u("/notfound"): ("failed", "http_404"),
        u("/flaky/a"): ("ok", ""),  # 500 then 200
        u("/always500"): ("failed", "http_500"),
        u("/slow?s=3"): ("failed", "timeout"),
        u("/drip"): ("failed", "deadline"),
        u("/big"): ("failed", "byte_cap"),  # with Content-Length
        u("/big?nocl=1"): ("failed", "byte_cap"),  # without: counted while streaming
        u("/notimage.jpg"): ("failed", "not_an_image"),  # HTML sent as image/jpeg
        u("/truncated.jpg"): ("failed", "truncated"),
        u("/short"): ("failed", "incomplete"),
        u(f"/redirect?to={u('/img/3.jpg')}"): ("ok", ""),
        "file:///etc/passwd": ("failed", "scheme"),
    }
    text = "# a comment\n\nlabel\turl\n" + "".join(f"cat\t{url}\n" for url in cases)
    text += "no tab here\n../evil\thttp://x/1.jpg\ncat\t\n" + f"cat\t{u('/img/1.jpg')}\n"
    (tmp_path / "urls.tsv").write_text(text)
    ds = tmp_path / "ds"
    t0 = time.monotonic()
    res = download_url_list(tmp_path / "urls.tsv", ds, FAST, workers=8, progress=False)
    took = time.monotonic() - t0

    rows = read_csv(ds / "download_report.csv")
    assert [r["url"] for r in rows[: len(cases)]] == list(cases)  # list order kept
    for r in rows[: len(cases)]:
        assert (r["status"], r["reason"]) == cases[r["url"]], r
    # malformed lines are listed with their numbers and skipped; a repeated line is skipped
    dup = [r for r in rows if r["status"] == "skipped"]
    assert len(dup) == 1 and dup[0]["detail"] == "same as line 4"
    bad = [r["detail"] for r in rows if r["status"] == "malformed"]
    assert [b.split(":")[0] for b in bad] == ["line 18", "line 19", "line 20"]
    assert "starts with a dot" in bad[1]

    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 4
    for r in ok:
        p = ds / r["path"]
        assert p.parent == ds / "cat" and p.stem == stem(r["url"])
        decode_image(p)
    assert sorted(p.suffix for p in (ds / "cat").iterdir()) == [".jpg", ".jpg", ".jpg", ".png"]
    assert not (ds / ".incoming").exists()
    assert (ds / "cat" / f"{stem(u('/img/1.jpg'))}.jpg").read_bytes() == jpeg(1)  # original bytes stored

    # retries: 5xx and timeouts retried up to 1 + retries times, 4xx never
    assert server.hits["/flaky/a"] == 2
    assert server.hits["/always500"] == 3
    assert server.hits["/notfound"] == 1
    assert server.hits["/slow"] == 3  # read timeouts are retried (0.5 s each, within the 2 s deadline)
    assert server.hits["/drip"] == 1
    assert res.summary().startswith("ok 4, exists 0, failed 10 (")
    assert "http_404: 1" in res.summary() and "byte_cap: 2" in res.summary()
    assert res.summary().endswith("malformed lines 3, skipped lines 1")
    assert took < 8  # workers overlap the slow cases; deadlines bound each


def test_rerun_skips_existing_files(server, tmp_path):
    entries = [UrlEntry(i + 1, lab, server.url(f"/img/{i}.jpg")) for i, lab in enumerate(["a", "b", "a"])]
    first = download_entries(entries, tmp_path, FAST, workers=2, progress=False)
    assert [r.status for r in first.rows] == ["ok"] * 3
    hits = sum(server.hits.values())
    second = download_entries(entries, tmp_path, FAST, workers=2, progress=False)
    assert [r.status for r in second.rows] == ["exists"] * 3
    assert [r.path for r in second.rows] == [r.path for r in first.rows]
    assert sum(server.hits.values()) == hits  # nothing fetched again
    assert second.summary() == "ok 0, exists 3, failed 0"


def test_same_url_under_two_labels_lands_in_both(server, tmp_path):
    url = server.url("/img/5.jpg")
    res = download_entries([UrlEntry(1, "a", url), UrlEntry(2, "b", url)], tmp_path, FAST, workers=2, progress=False)
    assert [r.path for r in res.rows] == [f"a/{stem(url)}.jpg", f"b/{stem(url)}.jpg"]


def test_lying_content_length_reads_no_more_than_announced(server, tmp_path):
    # the server announces 1000 bytes and would send 800 kB: only the announced bytes are read
    assert fetch(server.url("/lying"), FAST) == bytes(1000)
    res = download_entries([UrlEntry(1, "a", server.url("/lying"))], tmp_path, FAST, progress=False)
    assert [(r.status, r.reason) for r in res.rows] == [("failed", "not_an_image")]


def test_private_addresses_are_refused_without_a_connection(server, tmp_path):
    opts = FetchOptions(connect_timeout=1, read_timeout=1, deadline=3, retries=0)  # address check on
    res = download_entries([UrlEntry(1, "a", server.url("/img/1.jpg")), UrlEntry(2, "a", "http://2130706433:9/x.jpg")],
                           tmp_path, opts, progress=False)
    assert [(r.status, r.reason) for r in res.rows] == [("failed", "private_address")] * 2
    assert sum(server.hits.values()) == 0


def test_every_redirect_hop_is_checked(server, other_server, tmp_path):
    # the first server is admitted explicitly; its redirects to other places are each checked again
    opts = FetchOptions(connect_timeout=1, read_timeout=1, deadline=3, retries=0, max_bytes=CAP,
                        allow_addresses=(f"127.0.0.1:{server.port}",))
    u = server.url
    targets = {
        u("/img/1.jpg"): ("ok", ""),  # the admitted endpoint itself
        u(f"/redirect?to={u('/img/2.jpg')}"): ("ok", ""),  # redirect within it: re-checked, admitted
        u(f"/redirect?to={other_server.url('/img/3.jpg')}"): ("failed", "private_address"),
        u(f"/redirect?to=http://localhost:{other_server.port}/img/4.jpg&code=307"): ("failed", "private_address"),
        u("/redirect?to=http://169.254.169.254/latest/meta-data/&code=301"): ("failed", "private_address"),
        u("/redirect?to=file:///etc/passwd"): ("failed", "scheme"),
        u(f"/redirect?to={u('/redirect')}"): ("failed", "bad_redirect"),  # a hop without Location
    }
    res = download_entries([UrlEntry(i, "a", url) for i, url in enumerate(targets, 1)], tmp_path, opts, progress=False)
    assert {r.url: (r.status, r.reason) for r in res.rows} == targets
    assert sum(other_server.hits.values()) == 0  # the refused hop was never connected to


def test_redirect_loop_is_bounded(server):
    with pytest.raises(FetchError) as e:
        fetch(server.url("/redirect?to=/loop"), FetchOptions(allow_private=True, max_redirects=3))
    assert e.value.reason == "too_many_redirects"
    assert server.hits["/redirect"] + server.hits["/loop"] == 4  # the first request and 3 hops


def test_connects_to_the_checked_address_not_a_second_lookup(server):
    answers = iter([["127.0.0.1"], ["10.255.255.1"]])  # a rebinding DNS: the second answer would win
    calls = []

    def resolver(host, port):
        calls.append(host)
        return next(answers)

    opts = FetchOptions(allow_addresses=(f"127.0.0.1:{server.port}",), resolver=resolver, retries=0, deadline=3)
    body = fetch(f"http://images.test:{server.port}/img/4.jpg", opts)
    assert body == jpeg(4)
    assert calls == ["images.test"]  # one lookup for one hop
    assert server.hosts[-1] == f"images.test:{server.port}"  # Host header names the original host


def test_parse_url_list_rejects_path_tricks():
    text = "\n".join([
        "ok\thttp://x/a.jpg",
        "../up\thttp://x/b.jpg",
        "a/b\thttp://x/c.jpg",
        "%2e%2e%2f\thttp://x/d.jpg",
        ".hidden\thttp://x/e.jpg",
        "x" * 101 + "\thttp://x/f.jpg",
        "C:\\win\thttp://x/g.jpg",
        "tab\tin\tthree",
        "bell\x07\thttp://x/h.jpg",
        "  spaced  \thttp://x/../../%2e%2e%2fetc/passwd",
    ])
    entries, bad = parse_url_list(text)
    assert [(e.line, e.label) for e in entries] == [(1, "ok"), (10, "spaced")]
    assert [b.line for b in bad] == [2, 3, 4, 5, 6, 7, 8, 9]
    # the name never comes from the URL's path
    from imgclf.acquire.urls import url_file_stem

    assert url_file_stem(entries[1].url) == stem("http://x/../../%2e%2e%2fetc/passwd")


def test_https_verifies_the_original_name_on_the_checked_address(tmp_path):
    import ssl
    import subprocess
    import sys

    from acquire_helpers import TestServer, make_tls_files, standard_routes

    ca, cert, key = make_tls_files(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    tls = TestServer(tls=ctx)
    standard_routes(tls)
    tls.start()
    try:
        script = (
            "import sys\nfrom imgclf.acquire.fetch import fetch, FetchOptions, FetchError\n"
            "for url in sys.argv[1:]:\n"
            "    try: print(len(fetch(url, FetchOptions(allow_private=True, retries=0, deadline=5))))\n"
            "    except FetchError as e: print(e.reason)\n"
        )
        urls = [f"https://localhost:{tls.port}/img/1.jpg", tls.url("/img/1.jpg")]  # the cert names localhost only
        env = {"SSL_CERT_FILE": ca, "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", script, *urls], capture_output=True, text=True, env=env, timeout=60)
        assert out.stdout.split() == [str(len(jpeg(1))), "tls"], out.stderr
        with pytest.raises(FetchError) as e:  # not trusted without the test CA
            fetch(urls[0], FetchOptions(allow_private=True, retries=0, deadline=5))
        assert e.value.reason == "tls"
    finally:
        tls.stop()

"""The SSRF defence: every non-public spelling is refused before any connection."""
from __future__ import annotations

import pytest

from imgclf.acquire.safety import UnsafeURL, check_url, is_public_address

PRIVATE_URLS = [
    "http://127.0.0.1/x.jpg",
    "http://127.1/x.jpg",
    "http://2130706433/x.jpg",  # decimal 127.0.0.1
    "http://0x7f000001/x.jpg",  # hex
    "http://017700000001/x.jpg",  # octal
    "http://0/x.jpg",  # 0.0.0.0
    "http://localhost/x.jpg",
    "http://LOCALHOST/x.jpg",
    "http://[::1]/x.jpg",
    "http://[::]/x.jpg",
    "http://[::ffff:127.0.0.1]/x.jpg",  # IPv4-mapped IPv6
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[fe80::1]/",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://10.0.0.1/",
    "http://10.255.255.255:8080/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://224.0.0.1/",  # multicast
    "http://239.255.255.250/",
    "http://240.0.0.1/",  # reserved
    "http://255.255.255.255/",
    "https://127.0.0.1:8443/x.png",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_addresses_are_refused(url):
    with pytest.raises(UnsafeURL) as e:
        check_url(url)
    assert e.value.reason in ("private_address", "dns")


@pytest.mark.parametrize("url", PRIVATE_URLS[:12])
def test_allow_private_admits_them(url):
    t = check_url(url, allow_private=True)
    assert t.addresses and t.scheme in ("http", "https")


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/a.jpg", "gopher://127.0.0.1:70/_x", "data:image/png;base64,AAAA",
     "javascript:alert(1)", "//example.com/a.jpg", "example.com/a.jpg", "dict://127.0.0.1:11211/", "jar:http://x/!/"],
)
def test_other_schemes_are_refused_even_with_allow_private(url):
    with pytest.raises(UnsafeURL) as e:
        check_url(url, allow_private=True)
    assert e.value.reason == "scheme"


def test_credentials_and_missing_host_are_refused():
    with pytest.raises(UnsafeURL, match="user name or password"):
        check_url("http://user:pw@8.8.8.8/", allow_private=True)
    with pytest.raises(UnsafeURL) as e:
        check_url("http:///x.jpg", allow_private=True)
    assert e.value.reason == "bad_url"


def test_public_literal_passes_without_connecting():
    t = check_url("http://8.8.8.8:8080/a b/ü.jpg?q=x y")
    assert t.addresses == ("8.8.8.8",) and t.port == 8080
    assert t.target == "/a%20b/%C3%BC.jpg?q=x%20y"  # encoded once, ASCII only


def test_every_resolved_address_is_checked():
    # a name answering one public and one private address is refused (attackers add both)
    resolver = lambda host, port: ["93.184.216.34", "10.0.0.7"]  # noqa: E731
    with pytest.raises(UnsafeURL, match="10.0.0.7"):
        check_url("http://images.example/x.jpg", resolver=resolver)
    t = check_url("http://images.example/x.jpg", resolver=lambda h, p: ["93.184.216.34"])
    assert t.host == "images.example" and t.addresses == ("93.184.216.34",)


def test_allow_addresses_admits_exactly_one_endpoint():
    t = check_url("http://127.0.0.1:8080/x", allow_addresses=["127.0.0.1:8080"])
    assert t.addresses == ("127.0.0.1",)
    with pytest.raises(UnsafeURL):
        check_url("http://127.0.0.1:8081/x", allow_addresses=["127.0.0.1:8080"])
    with pytest.raises(UnsafeURL):
        check_url("http://10.0.0.1:8080/x", allow_addresses=["127.0.0.1:8080"])


@pytest.mark.parametrize(
    "address,public",
    [("8.8.8.8", True), ("2001:4860:4860::8888", True), ("::ffff:8.8.8.8", True), ("::ffff:10.1.2.3", False),
     ("fe80::1%eth0", False), ("::1", False), ("0.0.0.0", False), ("198.18.0.1", False), ("192.0.2.1", False)],
)
def test_is_public_address(address, public):
    assert is_public_address(address) is public


@pytest.mark.parametrize("spec", ["localhost:80", "127.0.0.1", "127.0.0.1:http", "[::1]"])
def test_malformed_allowed_address_fails_when_options_are_made(spec):
    from imgclf.acquire.fetch import FetchOptions
    from imgclf.util.errors import ImgclfError

    with pytest.raises(ImgclfError, match="IP:PORT|IP address"):
        FetchOptions(allow_addresses=(spec,))
    assert FetchOptions(allow_addresses=("[::1]:8080", "10.0.0.5:80")).allow_addresses

"""Which URLs may be fetched: the server-side request forgery (SSRF) defence.

A user-supplied URL (or a redirect from it) must not reach the machine itself, the local
network or a cloud metadata service. The host is resolved ONCE, every address it resolves to
is checked, and the caller connects to one of those checked addresses — never to the name
again, so a DNS answer that changes between check and connect (rebinding) gains nothing.
Numeric host spellings (``2130706433``, ``0x7f000001``, ``017700000001``, ``127.1``) need no
special casing: the resolver turns them into the address they denote, and that is checked.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import quote, urlsplit

from ..util.errors import ImgclfError, UnsafeURL

SCHEMES = {"http": 80, "https": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

#: ``resolver(host, port) -> addresses``; the default asks the system (``getaddrinfo``).
Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class Target:
    """A checked URL: connect to one of ``addresses`` and name ``host`` in Host and TLS SNI."""

    url: str
    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    port: int
    target: str  # request target: path and query, percent-encoded
    addresses: tuple[str, ...]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order (no duplicates)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address; IPv6 forms embedding IPv4 are unwrapped."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(e is not None and not is_public_address(str(e)) for e in embedded):
            return False
        if ip.ipv4_mapped is not None:
            return True  # judged by the IPv4 address it carries
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def check_url(
    url: str,
    allow_private: bool = False,
    *,
    allow_addresses: Iterable[str] = (),
    resolver: Resolver | None = None,
) -> Target:
    """Check ``url`` and resolve its host once; raise :class:`UnsafeURL` when it may not be fetched.

    ``allow_private`` turns the address check off (schemes are still checked);
    ``allow_addresses`` admits single private endpoints given as ``"IP:PORT"`` (``"[::1]:8080"``).
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UnsafeURL("scheme", f"URL scheme {parts.scheme or '(none)'!r} is not allowed in {_short(url)}; expected http or https")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("credentials", f"URL {_short(url)} carries a user name or password; remove them")
    try:
        port = parts.port or SCHEMES[scheme]
    except ValueError:
        raise UnsafeURL("bad_url", f"URL {_short(url)} has an invalid port") from None
    host = parts.hostname or ""
    if not host:
        raise UnsafeURL("bad_url", f"URL {_short(url)} has no host")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise UnsafeURL("bad_url", f"URL {_short(url)} has an invalid host name") from None
    try:
        addresses = (resolver or system_resolver)(host, port)
    except (OSError, UnicodeError) as e:
        raise UnsafeURL("dns", f"cannot resolve host {host!r}: {e}") from None
    if not addresses:
        raise UnsafeURL("dns", f"host {host!r} resolves to no address")
    if not allow_private:
        allowed = {parse_endpoint(a) for a in allow_addresses}
        for a in addresses:
            if (str(ipaddress.ip_address(a.split("%", 1)[0])), port) not in allowed and not is_public_address(a):
                raise UnsafeURL("private_address", f"host {host!r} resolves to the non-public address {a}")
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        target += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return Target(url, scheme, host, port, target, tuple(addresses))


def parse_endpoint(spec: str) -> tuple[str, int]:
    """``"IP:PORT"`` or ``"[IPv6]:PORT"`` → (normalised IP, port); ImgclfError when malformed."""
    host, sep, port = spec.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ImgclfError(f"allowed address {spec!r} must look like IP:PORT, e.g. 10.0.0.5:8080 or [::1]:8080")
    try:
        return str(ipaddress.ip_address(host.strip("[]"))), int(port)
    except ValueError:
        raise ImgclfError(f"allowed address {spec!r} must name an IP address, not a host name") from None


def _short(url: str, limit: int = 120) -> str:
    return repr(url if len(url) <= limit else url[:limit] + "...")

"""Test helpers: generated images and a real HTTP server on 127.0.0.1 with the misbehaviours
downloads must survive."""
from __future__ import annotations

import datetime
import io
import ssl
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

CAP = 200_000  # byte cap the download tests use


def make_image(seed: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A smooth random picture: blocks of colour upscaled (dhash sees real structure)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    return Image.fromarray(small, "RGB").resize(size, Image.BICUBIC)


def encode(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg(seed: int) -> bytes:
    return encode(make_image(seed), "JPEG", quality=90)


Route = Callable[[BaseHTTPRequestHandler, dict], None]


class TestServer:
    """Routes by path prefix; counts hits per path; records Host headers."""

    __test__ = False

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.hosts: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                with server._lock:
                    server.hits[parts.path] += 1
                    server.hosts.append(self.headers.get("Host", ""))
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                for prefix in sorted(server.routes, key=len, reverse=True):
                    if parts.path.startswith(prefix):
                        try:
                            server.routes[prefix](self, {"path": parts.path, **query})
                        except (BrokenPipeError, ConnectionResetError):
                            pass
                        return
                self.send_error(404)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> "TestServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def send(h: BaseHTTPRequestHandler, body: bytes, status: int = 200, ctype: str = "image/jpeg",
         length: int | None = -1, headers: dict | None = None) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    if length is not None:
        h.send_header("Content-Length", str(len(body) if length == -1 else length))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def standard_routes(server: TestServer) -> None:
    """One route per download hazard: a misleading type, 404 and 500 (flaky or always), slow headers, a drip-fed
body, oversized, lying and short bodies, a page or a truncated JPEG posing as an image, redirects and a loop."""
    flaky: Counter[str] = Counter()

    def img(h, q):  # /img/<seed>.jpg
        send(h, jpeg(int(q["path"].rsplit("/", 1)[1].split(".")[0])))

    def png(h, q):  # served with a misleading type: the type is judged by decoding
        send(h, encode(make_image(int(q["path"].rsplit("/", 1)[1])), "PNG"), ctype="application/octet-stream")

    def flaky_route(h, q):  # first request 500, then the image
        flaky[q["path"]] += 1
        if flaky[q["path"]] == 1:
            send(h, b"busy", 500, "text/plain")
        else:
            send(h, jpeg(7))

    def slow_headers(h, q):
        time.sleep(float(q.get("s", 3)))
        send(h, jpeg(8))

    def drip(h, q):  # a byte every 0.1 s: each read is quick, the whole never ends in time
        data = jpeg(9)
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        for b in data[:60]:
            h.wfile.write(bytes([b]))
            h.wfile.flush()
            time.sleep(0.1)

    def big(h, q):
        body = bytes(CAP * 4)
        send(h, body, length=None if q.get("nocl") else -1)

    def lying_small(h, q):  # claims 1000 bytes, would send 4 caps
        send(h, bytes(CAP * 4), length=1000)

    def short(h, q):  # claims more than it sends, then closes
        send(h, jpeg(10)[:500], length=5000)

    def redirect(h, q):  # without `to`: a redirect that names no target
        send(h, b"", int(q.get("code", 302)), "text/plain", headers={"Location": q["to"]} if "to" in q else {})

    server.routes.update({
        "/img/": img,
        "/png/": png,
        "/notfound": lambda h, q: send(h, b"no", 404, "text/plain"),
        "/flaky/": flaky_route,
        "/always500": lambda h, q: send(h, b"down", 500, "text/plain"),
        "/slow": slow_headers,
        "/drip": drip,
        "/big": big,
        "/lying": lying_small,
        "/short": short,
        "/notimage.jpg": lambda h, q: send(h, b"<html><body>not an image</body></html>" * 20),
        "/truncated.jpg": lambda h, q: send(h, encode(make_image(11, (400, 300)), "JPEG", quality=95)[:3000]),
        "/redirect": redirect,
        "/loop": lambda h, q: send(h, b"", 302, "text/plain", headers={"Location": "/loop"}),
    })


def make_tls_files(folder, names: tuple[str, ...] = ("localhost",)) -> tuple[str, str, str]:
    """A throwaway CA and a server certificate for ``names``: (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = dict(not_valid_before=now - datetime.timedelta(days=1), not_valid_after=now + datetime.timedelta(days=1))

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("imgclf test CA")).issuer_name(name("imgclf test CA"))
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(valid["not_valid_before"]).not_valid_after(valid["not_valid_after"])
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name(names[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2)
            .not_valid_before(valid["not_valid_before"]).not_valid_after(valid["not_valid_after"])
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [str(folder / f) for f in ("ca.pem", "server.pem", "server.key")]
    for p, data in zip(paths, [ca.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.PEM),
                               key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption())]):
        with open(p, "wb") as f:
            f.write(data)
    return paths[0], paths[1], paths[2]

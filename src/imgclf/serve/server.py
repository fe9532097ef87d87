"""Running the app on uvicorn: ``serve_bundle`` for the CLI, :class:`ServerThread` for tests and
benchmarks.

Graceful shutdown: the first SIGTERM turns readiness to 503 at once, keeps serving for
``serve.drain_s`` (so load balancers stop sending), then stops accepting, lets in-flight
requests finish (at most ``serve.timeout_s``) and exits 0. SIGINT (Ctrl-C) skips the drain
wait. A second signal exits at once.
"""
from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

import uvicorn

from ..config.settings import Config, EngineConfig, ServeConfig
from ..util.errors import ImgclfError
from .connection import Guards, guarded_protocol

log = logging.getLogger("imgclf.serve")


def bind_is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None, insecure: bool) -> None:
    """Refuse to expose the service beyond this machine without a token (unless ``insecure``)."""
    if not token and not insecure and not bind_is_loopback(host):
        raise ImgclfError(f"refusing to serve on {host} without a token: anyone who can reach it could use it",
                          hint="pass --token T (or set IMGCLF_TOKEN), or --insecure to serve without one, "
                               "or bind 127.0.0.1")


def _uvicorn_config(app: Any, cfg: ServeConfig, **kw: Any) -> uvicorn.Config:
    metrics = getattr(getattr(getattr(app, "state", None), "imgclf", None), "metrics", None)
    on_refused = (lambda reason: metrics.rejected.labels(reason).inc()) if metrics is not None else None
    on_hangup = metrics.client_disconnects.inc if metrics is not None else None
    return uvicorn.Config(app, host=cfg.host, port=cfg.port, limit_concurrency=cfg.max_connections,
                          timeout_graceful_shutdown=max(1, int(cfg.timeout_s + 0.999)), access_log=False,
                          server_header=False, lifespan="on",
                          http=guarded_protocol(Guards.from_config(cfg), on_refused, on_hangup), **kw)


class _GracefulServer(uvicorn.Server):
    """uvicorn, with readiness turned off before the listening socket closes."""

    def __init__(self, config: uvicorn.Config, service: Any, drain_s: float, loader: Callable[[], Any] | None):
        super().__init__(config)
        self._service = service
        self._drain_s = drain_s
        self._loader = loader
        self._loading: threading.Thread | None = None
        self._signalled = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._loader is not None:  # listening: live answers, ready says 503 until loaded
            self._loading = self._service.load_in_background(self._loader)

    def finish_loading(self) -> None:
        """Wait for a model load that a shutdown overtook, then stop what it started: an engine still
        compiling when the interpreter exits aborts the process ("terminate called without an active exception")."""
        if self._loading is not None and self._loading.is_alive():
            log.info("waiting for the model to finish loading before exiting")
            self._loading.join()
            self._service.close()

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self._signalled:
            self.force_exit = True
            return
        self._signalled = True
        self.begin_shutdown(self._drain_s if sig == signal.SIGTERM else 0.0)

    def begin_shutdown(self, drain_s: float = 0.0) -> None:
        """Readiness → 503 now; stop accepting after ``drain_s`` seconds."""
        self._service.draining = True
        timer = threading.Timer(drain_s, lambda: setattr(self, "should_exit", True))
        timer.daemon = True
        timer.start()


def run_app(app: Any, serve_cfg: ServeConfig, *, loader: Callable[[], Any] | None = None, log_level: str = "info") -> None:
    """Serve an app made by ``create_app`` on ``serve_cfg.host:port`` until SIGTERM or SIGINT,
    shutting down gracefully (see the module docstring); ImgclfError if it cannot start or its
    model fails to load. ``loader()`` (returning a Predictor) runs once the server listens.
    """
    service = app.state.imgclf
    server = _GracefulServer(_uvicorn_config(app, serve_cfg, log_level=log_level), service, serve_cfg.drain_s, loader)
    failure: list[BaseException] = []

    def _on_load_error(e: BaseException) -> None:
        failure.append(e)
        server.begin_shutdown(0.0)

    service.on_load_error = _on_load_error
    server.run()
    server.finish_loading()
    if failure:
        e = failure[0]
        raise ImgclfError(f"the model failed to load: {e}",
                          hint=getattr(e, "hint", "") or "check the bundle with `imgclf predict BUNDLE IMAGE`")
    if not server.started:
        raise ImgclfError(f"could not start the server on {serve_cfg.host}:{serve_cfg.port}",
                          hint="is the port in use? pick another with --port")


def serve_bundle(bundle_dir: str | Path, cfg: Config, *, token: str | None = None, insecure: bool = False,
                 engine_cfg: EngineConfig | None = None, follow: str | Path | None = None) -> None:
    """Verify the bundle, then serve it until SIGTERM/SIGINT; raises ImgclfError on refusal.

    The manifest is checked before binding (a tampered bundle never starts); the engine is
    built after the server is up, so /v2/health/live answers while /ready says 503. ``follow``: a
    runs folder whose published iteration is served from then on, every publish and rollback swapped in.
    """
    from ..bundle.folder import load_bundle
    from ..inference.predict import Predictor
    from .app import create_app
    from .follow import PublishedFollower

    check_bind(cfg.serve.host, token, insecure)
    bundle = load_bundle(bundle_dir)  # BundleError with a clear message on a mismatch
    app = create_app(None, cfg.serve, token=token, keep_into=_keep_place(cfg.serve, bundle_dir))
    url = f"http://{cfg.serve.host}:{cfg.serve.port}"
    log.info("serving %s (%s) on %s; docs at %s/docs%s", Path(bundle_dir), ", ".join(bundle.labels), url, url,
             "?token=<token>" if token else "")
    follower = None
    if follow is not None:
        follower = PublishedFollower(follow, app.state.imgclf, lambda b: Predictor(b, engine_cfg, cfg.predict))
        follower.start(Path(bundle_dir).resolve().parent)
        log.info("following the published iteration of %s", follow)
    try:
        run_app(app, cfg.serve, loader=lambda: Predictor(bundle_dir, engine_cfg, cfg.predict))
    finally:
        if follower is not None:
            follower.stop()


def _keep_place(cfg: ServeConfig, bundle_dir: str | Path):
    """Where a bundle's server keeps the images it is asked about: ``serve.keep_dir``, else the pool of the dataset
    of the run the bundle lies in (None when nothing is kept)."""
    from ..rundir.layout import run_config
    from .keeper import keep_place

    if not cfg.keep_inputs:
        return None
    run = run_config(Path(bundle_dir).resolve().parent)
    return keep_place(cfg, run.images_dir() if run is not None else None, run.data.pool if run is not None else "")


class ServerThread:
    """Serve ``app`` on 127.0.0.1 on a free port in a background thread (tests, benchmarks).

    >>> with ServerThread(app) as srv:  # doctest: +SKIP
    ...     httpx.get(srv.url + "/v2/health/live")
    """

    def __init__(self, app: Any, cfg: ServeConfig | None = None, *, ready_timeout: float = 60.0):
        self.app = app
        self.cfg = cfg or ServeConfig()
        self.ready_timeout = ready_timeout
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(_uvicorn_config(app, self.cfg, log_level="warning"))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]},
                                        name="imgclf-server", daemon=True)

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        until = time.monotonic() + self.ready_timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > until:
                raise RuntimeError(f"the test server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(30)
        self._sock.close()

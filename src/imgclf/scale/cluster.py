"""Ray, imported here only, and the connection to a cluster: a local instance or a cluster's address."""
from __future__ import annotations

import logging
import socket
from types import ModuleType
from typing import Any

from ..util.errors import ImgclfError

log = logging.getLogger(__name__)

INSTALL = "pip install 'imgclf[ray]'"


class RayMissing(ImgclfError):
    """``--ray`` (or :func:`imgclf.scale.datasets.predict`) was asked for and Ray Data is not installed."""

    reason = "ray_missing"


def require_ray() -> ModuleType:
    """The ``ray`` module with Ray Data, or :class:`RayMissing` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data]: a bare ray lacks pyarrow's side)
    except ImportError as e:
        raise RayMissing(f"Ray Data is not installed ({e.msg})", hint=f"install the extra: {INSTALL}") from None
    return ray


def _reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """ConnectionError at once when a ``ray://HOST:PORT`` address refuses or does not answer a TCP connection
    (Ray's client would retry for about 30 s before saying so); other addresses are Ray's to check."""
    if not address or not address.startswith("ray://"):
        return
    host, _, port = address[len("ray://"):].rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ConnectionError(f"{host}:{port} does not accept connections ({e.strerror or e})") from None


def connect(address: str | None = None) -> ModuleType:
    """Ray, connected: ``address`` None is Ray's own default ($RAY_ADDRESS when set, else a new local
    instance with this machine's cores); ``"auto"`` the cluster started on this machine by ``ray start``;
    ``"ray://HOST:10001"`` a remote cluster through Ray Client; ``"HOST:6379"`` a cluster's head node.
    A connection made earlier in this process (a user's own ``ray.init``) is kept as it is."""
    ray = require_ray()
    if not ray.is_initialized():
        try:
            _reachable(address)
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
        except ConnectionError as e:
            raise ImgclfError(f"no Ray cluster answers at {address or '$RAY_ADDRESS'}: {e}",
                              hint="start one with `ray start --head` (then --ray-address auto), or give --ray alone for a "
                                   "local instance", reason="ray_unreachable") from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows its own bar
    ctx.print_on_execution_start = False
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    log.info("ray: %d node(s), %g CPUs", len(nodes), ray.cluster_resources().get("CPU", 0))
    return ray


def actor_pool(ray: ModuleType, actors: int | None, actor_cpus: float) -> dict[str, Any]:
    """``map_batches`` keywords of an actor pool of ``actors`` actors (None: as many as the cluster's CPUs
    hold at ``actor_cpus`` each, Ray started as Ray Data would start it when it is not yet) of ``actor_cpus`` CPUs each."""
    if actors is None and not ray.is_initialized():
        ray.init()
    n = actors or max(1, int(ray.cluster_resources().get("CPU", 1) // actor_cpus))
    return {"compute": ray.data.ActorPoolStrategy(size=n), "num_cpus": actor_cpus}

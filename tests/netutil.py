"""Network helpers shared by tests and benchmarks (importable as ``netutil`` from any test folder)."""
from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago, for a server started in another process."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


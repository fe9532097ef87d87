"""Network helpers shared by tests and benchmarks (importable as ``netutil`` from any test folder)."""
from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago, for a server started in another process."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def refused(args: list[str], timeout: float = 120) -> int:
    """``imgclf.cli.main(args)`` for a command that must refuse before it serves anything → its exit status.

    Run in a daemon thread: a command that stopped refusing (and serves) fails the test after ``timeout``
    seconds instead of hanging it until pytest's own timeout."""
    import threading

    from imgclf.cli import main

    done: list = []

    def call() -> None:
        try:
            done.append(main(args))
        except BaseException as e:  # noqa: BLE001  (re-raised in the test's thread)
            done.append(e)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"imgclf {' '.join(args)} did not refuse: still running after {timeout} s"
    if isinstance(done[0], BaseException):
        raise done[0]
    return done[0]

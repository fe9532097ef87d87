"""The OpenVINO runtime of this process, and whether it can run here: below the engine and the export reader,
which both use it."""
from __future__ import annotations

import functools
import os
from typing import Any


@functools.lru_cache(maxsize=1)
def ov_core() -> Any:
    import openvino as ov

    return ov.Core()


def read_model(path: str | os.PathLike) -> Any:
    """OpenVINO's model of the ONNX file at ``path``, read once per version of the file in this process.

    Reading converts the whole graph, and a run reads the same export several times (its description, then
    the engine, for featurize, calibration and evaluation). Exports are written whole and moved into place,
    so the file's identity (device, inode, size, modification and change times) stands for its content. The
    model is shared: callers clone it before changing it (compiling does not change it).
    """
    st = os.stat(path)
    return _read_model(os.path.abspath(path), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))


@functools.lru_cache(maxsize=4)
def _read_model(path: str, identity: tuple[int, ...]) -> Any:
    return ov_core().read_model(path)


def _interrupted(e: BaseException) -> bool:
    """True when ``e`` was raised while a KeyboardInterrupt was being handled (an extension module's import
    turns one into an ImportError)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


@functools.lru_cache(maxsize=1)
def openvino_problem() -> str:
    """Why OpenVINO cannot run here ("" when it can): not installed, or no CPU device it supports."""
    try:
        devices = ov_core().available_devices
    except Exception as e:  # ImportError, or the runtime refusing this CPU
        if _interrupted(e):  # Ctrl-C during the import surfaces as "ImportError: initialization failed"
            raise KeyboardInterrupt from e
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return "" if "CPU" in devices else f"no CPU device (devices: {', '.join(devices) or 'none'})"

"""Options shared by several commands, and how a command's config is resolved from them."""
from __future__ import annotations

import errno
import json
import socket
from pathlib import Path
from typing import Annotated, Any, Optional, Sequence

import typer

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML file of settings (see `imgclf config`).")]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override one setting: --set section.key=value, the value in TOML syntax (repeatable; "
                                     "every key: `imgclf config --explain`)."),
]
BundleSetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override one setting, e.g. --set predict.min_confidence=0.5 or --set engine.threads=2 "
                                     "(repeatable; the bundle fixes model.*; every key: `imgclf config --explain`)."),
]
ImagesOpt = Annotated[Optional[Path], typer.Option("--images", "-i", help="Images folder: one subfolder per class (sets data.images).")]
RunDirOpt = Annotated[Optional[Path], typer.Option("--run-dir", "-r", help="Run directory (default: DATA_ROOT/runs/<dataset>/<time>).")]
RunDirReq = Annotated[Path, typer.Option("--run-dir", "-r", help="Run directory made by `imgclf prepare` or `imgclf run`.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
TokenOpt = Annotated[Optional[str], typer.Option("--token", envvar="IMGCLF_TOKEN",
                                                 help="Bearer token (default: $IMGCLF_TOKEN). Visible in `ps`: prefer "
                                                      "$IMGCLF_TOKEN or --token-file.")]
TokenFileOpt = Annotated[Optional[Path], typer.Option("--token-file", help="File whose first line is the bearer token "
                                                                         "(kept out of `ps`, unlike --token).")]
HostOpt = Annotated[Optional[str], typer.Option(help="Bind address (serve.host, default 127.0.0.1).")]
PortOpt = Annotated[Optional[int], typer.Option(help="TCP port (serve.port, default 8000).")]
PresetOpt = Annotated[Optional[str], typer.Option("--preset", help="fast (one featurizer, lite0 224 px), balanced (featurizers "
                                                  "chosen by cross-validation on the train split only), best (balanced, plus refinement and a calibrated "
                                                  "ensemble weighed on validation on train) (sets train.preset).")]
TimeLimitOpt = Annotated[Optional[str], typer.Option("--time-limit", help="Seconds the run should take at most, e.g. 90, 90s, "
                                                     "10m, 1h (sets train.time_limit_s): best shortens, then drops refinement; "
                                                     "balanced drops its most expensive candidates to fit.")]
RayOpt = Annotated[bool, typer.Option("--ray", help="Run on Ray (imgclf's ray extra): the cluster of $RAY_ADDRESS or "
                                                  "--ray-address, else a local instance.")]
RayAddressOpt = Annotated[Optional[str], typer.Option("--ray-address", metavar="ADDRESS", help="The Ray cluster to run on "
                                                      "(implies --ray): auto (started on this machine by `ray start`), "
                                                      "HOST:6379 (its head node), ray://HOST:10001 (Ray Client).")]
ActorsOpt = Annotated[Optional[int], typer.Option("--actors", min=1, help="With --ray: actors in the pool, each holding the "
                                                  "model (default: the cluster's CPUs / CPUs per actor, which is engine.threads or 1).")]
InsecureOpt = Annotated[bool, typer.Option("--insecure", help="Allow a non-loopback address without a token.")]


def command_config(path: Optional[Path], overrides: Optional[list[str]], *, base: Any = None,
                   flags: Sequence[str] = (), uses: Any = None) -> Any:
    """:func:`imgclf.config.settings.load_config`, then the settings the whole process follows (the decoder's
    pixel limit ``images.max_pixels``): how every command resolves its config. ``uses``: the
    :class:`imgclf.config.settings.Uses` of a command that reads only some sections (a --set of another key is refused)."""
    from ..config.settings import load_config
    from ..data.images import configure

    cfg = load_config(path, overrides, base=base, flags=flags, uses=uses)
    configure(cfg.images)
    return cfg


def resolve_token(token: Optional[str], token_file: Optional[Path]) -> Optional[str]:
    """The bearer token from --token / $IMGCLF_TOKEN or from the first line of --token-file (not both)."""
    from ..util.errors import ImgclfError

    if token_file is None:
        return token or None
    if token:
        raise ImgclfError("both a token (--token or $IMGCLF_TOKEN) and --token-file were given",
                          hint="give the token one way only: unset IMGCLF_TOKEN or drop --token-file")
    try:
        lines = token_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ImgclfError(f"cannot read the token file {token_file}: {getattr(e, 'strerror', None) or e}",
                          hint="give a readable text file whose first line is the token") from None
    value = lines[0].strip() if lines else ""
    if not value:
        raise ImgclfError(f"the token file {token_file} is empty; expected the token on its first line",
                          hint="write one, e.g. `openssl rand -hex 16 > FILE`")
    return value


def bind_overrides(host: Optional[str], port: Optional[int]) -> list[str]:
    """``--set``-style overrides for the --host and --port options given on the command line."""
    return ([f"serve.host={json.dumps(host)}"] if host else []) + ([f"serve.port={port}"] if port is not None else [])


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on, naming a free one, before any address is announced.
    Binds the way uvicorn does (SO_REUSEADDR), so a port it could use is never refused."""
    from ..util.errors import ImgclfError

    if _bind_error(host, port) != errno.EADDRINUSE:
        return  # free, or another problem (a bad host) that uvicorn reports in its own words
    free = next((p for p in range(port + 1, min(port + 100, 65536)) if _bind_error(host, p) is None), None)
    raise ImgclfError(f"port {port} is in use on {host} (another server listens there)",
                      hint=f"--port {free} (free now)" if free else "pick a free port with --port N")


def _bind_error(host: str, port: int) -> int | None:
    """The errno of binding ``host:port`` for TCP (None when it can be bound)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    except socket.gaierror:
        return None
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return e.errno
    return None


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"10m"``, ``"1.5h"``; a ConfigError naming --time-limit otherwise."""
    from ..util.errors import ConfigError

    raw = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(raw[-1:], None)
    try:
        value = float(raw[:-1] if scale else raw) * (scale or 1.0)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"--time-limit must be a positive duration such as 90, 90s, 10m or 1h; got {text!r}",
                          hint="e.g. --time-limit 10m (it sets train.time_limit_s; leave it out for no limit)")
    return value


def preset_flags(preset: Optional[str], time_limit: Optional[str]) -> list[str]:
    """``section.key=value`` flags of the --preset and --time-limit options given on the command line."""
    return ([f"train.preset={json.dumps(preset)}"] if preset else []) + \
        ([f"train.time_limit_s={parse_duration(time_limit)}"] if time_limit else [])


def echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False))

"""``imgclf serve`` and ``imgclf call``."""
from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli import ConfigOpt, SetOpt, make_config

TokenOpt = Annotated[Optional[str], typer.Option("--token", envvar="IMGCLF_TOKEN",
                                                 help="Bearer token (default: $IMGCLF_TOKEN).")]
HostOpt = Annotated[Optional[str], typer.Option(help="Bind address (serve.host, default 127.0.0.1).")]
PortOpt = Annotated[Optional[int], typer.Option(help="TCP port (serve.port, default 8000).")]
InsecureOpt = Annotated[bool, typer.Option("--insecure", help="Allow a non-loopback address without a token.")]


def bind_overrides(host: Optional[str], port: Optional[int]) -> list[str]:
    """``--set``-style overrides for the --host and --port options given on the command line."""
    return ([f"serve.host={json.dumps(host)}"] if host else []) + ([f"serve.port={port}"] if port is not None else [])


def _mentions_engine(config: Optional[Path], overrides: Optional[list[str]]) -> bool:
    """True when the user chose engine settings; otherwise the bundle's own engine is used."""
    if any(s.strip().startswith("engine.") for s in overrides or []):
        return True
    if config is None or not config.is_file():
        return False
    text = config.read_text(encoding="utf-8")
    try:
        values = json.loads(text) if config.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError):
        return False  # make_config has already reported it
    return "engine" in values


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(bundle: Annotated[Path, typer.Argument(help="Model bundle folder (RUN_DIR/model).")],
              host: HostOpt = None, port: PortOpt = None, token: TokenOpt = None, insecure: InsecureOpt = False,
              config: ConfigOpt = None, set: SetOpt = None) -> None:
        """Serve a model bundle over REST: /predict, /score, Open Inference Protocol v2, /metrics, /docs."""
        from .server import serve_bundle

        cfg = make_config(config, set, bind_overrides(host, port))
        logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
        serve_bundle(bundle, cfg, token=token or None, insecure=insecure,
                     engine_cfg=cfg.engine if _mentions_engine(config, set) else None)

    @app.command()
    def call(url: Annotated[str, typer.Argument(help="Server URL, e.g. http://127.0.0.1:8000 (or .../score).")],
             image: Annotated[Path, typer.Argument(help="Image file to send.")],
             n: Annotated[int, typer.Option("-n", min=1, help="Number of calls.")] = 5,
             token: TokenOpt = None) -> None:
        """Call the service n times; print round-trip, server and overhead ms and the prediction."""
        from .client import call as do_call, summary

        results = []
        for i, r in enumerate(do_call(url, image, n=n, token=token), 1):
            results.append(r)
            typer.echo(f"call {i}: round trip {r.round_trip_ms:.1f} ms = server {r.server_ms:.1f} ms "
                       f"+ overhead {r.overhead_ms:.1f} ms -> {r.label} ({r.score:.3f})")
        typer.echo(summary(results))

"""``imgclf serve`` and ``imgclf call``."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .options import (
    ConfigOpt,
    HostOpt,
    InsecureOpt,
    PortOpt,
    SetOpt,
    TokenFileOpt,
    TokenOpt,
    bind_overrides,
    check_port_free,
    resolve_token,
)
from .pipeline import bundle_config


def published_bundle(runs: Path) -> Path:
    """The published iteration's bundle in a runs folder; an error saying how to publish one when there is none."""
    from ..rundir.iterations import PUBLISHED, published_run
    from ..util.errors import ImgclfError

    run = published_run(runs)
    if run is None:
        raise ImgclfError(f"{runs} has no published iteration (no {PUBLISHED})",
                          hint=f"publish one on the UI's Iterations page (`imgclf ui --run {runs}/RUN`), "
                               "or serve a bundle: `imgclf serve RUN_DIR/model`")
    return run / "model"


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(bundle: Annotated[Path, typer.Argument(
                  help="Model bundle folder (RUN_DIR/model), or a dataset's runs folder (DATA_ROOT/runs/NAME): its "
                       "published iteration is served, and every publish or rollback is followed without a restart.")],
              host: HostOpt = None, port: PortOpt = None, token: TokenOpt = None, token_file: TokenFileOpt = None,
              insecure: InsecureOpt = False, config: ConfigOpt = None, set: SetOpt = None) -> None:
        """Serve a model bundle over REST: /predict, /score, Open Inference Protocol v2, /metrics, /docs."""
        from ..rundir.iterations import PUBLISHED
        from ..rundir.state import bundle_run_incomplete
        from ..serve.server import serve_bundle

        follow = None
        if (bundle / PUBLISHED).exists() or (bundle.is_dir() and not (bundle / "bundle.json").exists()
                                             and not (bundle / "model").is_dir()):
            follow, bundle = bundle, published_bundle(bundle)
        cfg = bundle_config(bundle, config, set, bind_overrides(host, port), command="serve",
                            sections=("serve", "engine", "predict", "images"))
        check_port_free(cfg.serve.host, cfg.serve.port)
        if (incomplete := bundle_run_incomplete(bundle)):  # served all the same; /v2/health/ready says so too
            typer.echo(f"warning: {incomplete['message']}\nhint: {incomplete['hint']}", err=True)
        serve_bundle(bundle, cfg, token=resolve_token(token, token_file), insecure=insecure, engine_cfg=cfg.engine,
                     follow=follow)

    @app.command()
    def call(url: Annotated[str, typer.Argument(help="Server URL, e.g. http://127.0.0.1:8000 (or .../score).")],
             image: Annotated[Path, typer.Argument(help="Image file to send.")],
             n: Annotated[int, typer.Option("-n", min=1, help="Number of calls.")] = 5,
             token: TokenOpt = None, token_file: TokenFileOpt = None) -> None:
        """Call the service n times; print round-trip, server and overhead ms and the prediction."""
        from ..serve.client import call as do_call
        from ..serve.client import summary

        results = []
        for i, r in enumerate(do_call(url, image, n=n, token=resolve_token(token, token_file)), 1):
            results.append(r)
            typer.echo(f"call {i}: round trip {r.round_trip_ms:.1f} ms = server {r.server_ms:.1f} ms "
                       f"+ overhead {r.overhead_ms:.1f} ms -> {r.label} ({r.score:.3f})")
        typer.echo(summary(results))

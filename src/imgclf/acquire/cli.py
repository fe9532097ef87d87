"""Commands ``download``, ``scrape`` and ``dedup``: parse, call one library function, print."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli import ConfigOpt, SetOpt, make_config
from ..config import Config
from ..errors import ImgclfError

DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", "-d", help="Dataset name: DATA_ROOT/datasets/NAME (default: data.dataset).")]
ImagesOpt = Annotated[Optional[Path], typer.Option("--images", "-i", help="Dataset folder given explicitly (overrides --dataset).")]
WorkersOpt = Annotated[int, typer.Option(help="Parallel downloads.", min=1)]
ConnectOpt = Annotated[float, typer.Option(help="Seconds to open a connection.", min=0.1)]
ReadOpt = Annotated[float, typer.Option(help="Seconds without a byte before a read times out.", min=0.1)]
DeadlineOpt = Annotated[float, typer.Option(help="Seconds for one file, retries and redirects included.", min=0.1)]
MaxMbOpt = Annotated[float, typer.Option(help="Largest file accepted, in MB (enforced while streaming).", min=0.001)]
RetriesOpt = Annotated[int, typer.Option(help="Extra attempts after a timeout, connection error or 5xx.", min=0)]
PrivateOpt = Annotated[bool, typer.Option("--allow-private", help="Allow loopback and private addresses (a server on this machine or network).")]
AllowAddrOpt = Annotated[Optional[list[str]], typer.Option("--allow-address", help="Allow one private endpoint IP:PORT (repeatable).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def dataset_dir(cfg: Config, dataset: str | None, images: Path | None) -> Path:
    """The dataset folder named by --images, --dataset or the config."""
    if images is not None:
        return images
    if dataset is not None:
        from .urls import label_problem

        problem = label_problem(dataset)
        if problem:
            raise ImgclfError(f"invalid dataset name: {problem.replace('label', 'name')}",
                              hint="use a plain folder name, or --images DIR for a folder elsewhere")
        return Path(cfg.data.root) / "datasets" / dataset
    return cfg.images_dir()


def fetch_options(connect_timeout: float, read_timeout: float, deadline: float, max_mb: float, retries: int,
                  allow_private: bool, allow_address: list[str] | None):
    from .fetch import FetchOptions

    return FetchOptions(connect_timeout=connect_timeout, read_timeout=read_timeout, deadline=deadline,
                        max_bytes=int(max_mb * 1024 * 1024), retries=retries, allow_private=allow_private,
                        allow_addresses=tuple(allow_address or ()))


def _features_fn(cfg: Config, progress: bool):
    """Features of image paths through the configured backbone and engine, cached like `featurize`."""
    from ..featurize import build_featurizer, featurize_paths
    from ..pipeline import engine_cache_dir, feature_cache_dir

    def run(paths: list[str]):
        engine = build_featurizer(cfg.model, cfg.engine, cache_dir=engine_cache_dir(cfg))
        return featurize_paths(paths, engine, batch_size=cfg.featurize.batch_size, cache_dir=feature_cache_dir(cfg),
                               threads=cfg.engine.threads, progress=progress, desc="features").features

    return run


def register(app: typer.Typer) -> None:
    @app.command()
    def download(
        urls: Annotated[Path, typer.Argument(help="List of label<TAB>url lines (# comments and blank lines allowed).")],
        dataset: DatasetOpt = None,
        images: ImagesOpt = None,
        workers: WorkersOpt = 8,
        connect_timeout: ConnectOpt = 10.0,
        read_timeout: ReadOpt = 20.0,
        deadline: DeadlineOpt = 60.0,
        max_mb: MaxMbOpt = 20.0,
        retries: RetriesOpt = 3,
        allow_private: PrivateOpt = False,
        allow_address: AllowAddrOpt = None,
        quiet: QuietOpt = False,
        config: ConfigOpt = None,
        set: SetOpt = None,
    ) -> None:
        """Download images from a URL list into DATASET/<label>/; resumable, writes download_report.csv."""
        from .download import download_url_list

        if not urls.is_file():
            raise ImgclfError(f"URL list {urls} does not exist", hint="give a file of label<TAB>url lines")
        folder = dataset_dir(make_config(config, set), dataset, images)
        opts = fetch_options(connect_timeout, read_timeout, deadline, max_mb, retries, allow_private, allow_address)
        res = download_url_list(urls, folder, opts, workers=workers, progress=not quiet)
        for row in res.rows:
            if row.status == "malformed":
                typer.echo(f"skipped {row.detail}", err=True)
        typer.echo(res.summary())
        typer.echo(f"report: {res.report_path}")

    @app.command()
    def scrape(
        items: Annotated[str, typer.Option(help="Comma-separated items, e.g. blouse,hoodie,shirt.")],
        attributes: Annotated[str, typer.Option(help="Comma-separated attributes, e.g. striped,dotted,leopard.")],
        per_query: Annotated[int, typer.Option(help="Image URLs asked for per query.", min=1)] = 50,
        label_by: Annotated[str, typer.Option(help="Class label: attribute, item or item_attribute.")] = "attribute",
        provider: Annotated[str, typer.Option(help="Image search: auto, brave (BRAVE_SEARCH_API_KEY) or ddgs.")] = "auto",
        dataset: DatasetOpt = None,
        images: ImagesOpt = None,
        workers: WorkersOpt = 8,
        connect_timeout: ConnectOpt = 10.0,
        read_timeout: ReadOpt = 20.0,
        deadline: DeadlineOpt = 60.0,
        max_mb: MaxMbOpt = 20.0,
        retries: RetriesOpt = 3,
        allow_private: PrivateOpt = False,
        allow_address: AllowAddrOpt = None,
        quiet: QuietOpt = False,
        config: ConfigOpt = None,
        set: SetOpt = None,
    ) -> None:
        """Search images for every attribute x item query, write the URL list, download it."""
        from .scrape import COPYRIGHT_NOTICE
        from .scrape import scrape as do_scrape

        folder = dataset_dir(make_config(config, set), dataset, images)
        opts = fetch_options(connect_timeout, read_timeout, deadline, max_mb, retries, allow_private, allow_address)
        typer.echo(f"note: {COPYRIGHT_NOTICE}")
        res = do_scrape(items.split(","), attributes.split(","), folder, per_query=per_query, provider=provider,
                        label_by=label_by, opts=opts, workers=workers, progress=not quiet)  # type: ignore[arg-type]
        typer.echo(f"{res.provider}: {len(res.queries)} queries, {res.urls} distinct URLs -> {res.url_list}")
        for query, reason in res.failed_queries:
            typer.echo(f"query {query!r} failed: {reason}", err=True)
        if res.conflicts:
            typer.echo(f"{res.conflicts} URLs were found for two labels; each is kept under its first label only")
        typer.echo(res.download.summary())
        typer.echo(f"report: {res.download.report_path}")

    @app.command()
    def dedup(
        dataset: DatasetOpt = None,
        images: ImagesOpt = None,
        distance: Annotated[Optional[int], typer.Option(help="Largest dhash Hamming distance of near duplicates (default data.duplicate_distance; 0 = exact only).", min=0)] = None,
        features: Annotated[bool, typer.Option("--features", help="Also group images whose CNN features are nearly parallel (cached, uses model.*, engine.*).")] = False,
        feature_threshold: Annotated[float, typer.Option(help="Cosine similarity from which --features calls two images duplicates.", min=0.0, max=1.0)] = 0.95,
        move_to: Annotated[Optional[Path], typer.Option(help="Move the extra copies into this folder instead of excluding them.")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report; change nothing.")] = False,
        quiet: QuietOpt = False,
        config: ConfigOpt = None,
        set: SetOpt = None,
    ) -> None:
        """Find exact and near-duplicate images; keep one per group, exclude the rest (nothing is deleted)."""
        from .dedup import dedup_dataset
        from .report import write_dedup_report

        cfg = make_config(config, set)
        folder = dataset_dir(cfg, dataset, images)
        res = dedup_dataset(folder, cfg.data.duplicate_distance if distance is None else distance,
                            featurize=_features_fn(cfg, not quiet) if features else None, feature_threshold=feature_threshold,
                            move_to=move_to, dry_run=dry_run, progress=not quiet)
        html_path, csv_path = write_dedup_report(res)
        typer.echo(res.summary())
        typer.echo(f"report: {html_path} ({csv_path.name})")

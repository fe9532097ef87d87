"""Commands ``download``, ``scrape`` and ``dedup``: parse, call one library function, print."""
from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, Sequence

import typer

from ..config.settings import Config, DoctorConfig
from ..util.errors import ImgclfError
from .options import ConfigOpt, QuietOpt, SetOpt, command_config

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


def resolve_dataset(config: Path | None, overrides: list[str] | None, dataset: str | None, images: Path | None,
                    flags: Sequence[str] = ()) -> tuple[Config, Path]:
    """The config and dataset folder of an acquire command, by the one precedence rule: --config <
    --dataset / --images (and ``flags``) < --set. --images beats --dataset, as data.images beats data.dataset."""
    own = list(flags)
    if dataset is not None:
        from ..acquire.urls import label_problem

        problem = label_problem(dataset)
        if problem:
            raise ImgclfError(f"invalid dataset name: {problem.replace('label', 'name')}",
                              hint="use a plain folder name, or --images DIR for a folder elsewhere")
        own += [f"data.dataset={json.dumps(dataset)}", 'data.images=""']  # --dataset beats the file's data.images
    if images is not None:
        own.append(f"data.images={json.dumps(str(images))}")
    cfg = command_config(config, overrides, flags=own)
    return cfg, cfg.images_dir()


@dataclass(frozen=True)
class FetchArgs:
    """The options ``download`` and ``scrape`` share, defined once: :func:`fetch_command` adds them
    to a command (after its own) and hands them to it as one ``fetch: FetchArgs`` argument."""

    dataset: DatasetOpt = None
    images: ImagesOpt = None
    workers: WorkersOpt = 8
    connect_timeout: ConnectOpt = 10.0
    read_timeout: ReadOpt = 20.0
    deadline: DeadlineOpt = 60.0
    max_mb: MaxMbOpt = 20.0
    retries: RetriesOpt = 3
    allow_private: PrivateOpt = False
    allow_address: AllowAddrOpt = None
    quiet: QuietOpt = False
    config: ConfigOpt = None
    set: SetOpt = None

    def folder(self) -> Path:
        """The dataset folder to download into (see :func:`resolve_dataset`)."""
        return resolve_dataset(self.config, self.set, self.dataset, self.images)[1]

    def fetch_options(self):
        from ..acquire.fetch import FetchOptions

        return FetchOptions(connect_timeout=self.connect_timeout, read_timeout=self.read_timeout, deadline=self.deadline,
                            max_bytes=int(self.max_mb * 1024 * 1024), retries=self.retries,
                            allow_private=self.allow_private, allow_addresses=tuple(self.allow_address or ()))


def fetch_command(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with the :class:`FetchArgs` options after its own; it receives them as ``fetch``."""
    names = [f.name for f in dataclasses.fields(FetchArgs)]
    hints = typing.get_type_hints(FetchArgs, include_extras=True)
    shared = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
              for f in dataclasses.fields(FetchArgs)]
    sig = inspect.signature(command, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "fetch"]

    def with_fetch_args(**kwargs: Any) -> Any:
        fetch = FetchArgs(**{n: kwargs.pop(n) for n in names if n in kwargs})
        return command(**kwargs, fetch=fetch)

    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(with_fetch_args, attr, getattr(command, attr))
    with_fetch_args.__signature__ = sig.replace(parameters=own + shared)  # type: ignore[attr-defined]
    return with_fetch_args


def _features_fn(cfg: Config, progress: bool):
    """Features of image paths through the configured backbone and engine, cached like `featurize`."""
    from ..features.featurize import build_featurizer, featurize_paths
    from ..features.step import engine_cache_dir, feature_cache_dir

    def run(paths: list[str]):
        engine = build_featurizer(cfg.model, cfg.engine, cache_dir=engine_cache_dir(cfg))
        return featurize_paths(paths, engine, batch_size=cfg.featurize.batch_size, cache_dir=feature_cache_dir(cfg),
                               threads=cfg.engine.threads, progress=progress, desc="features").features

    return run


def download(
    urls: Annotated[Path, typer.Argument(help="List of label<TAB>url lines (# comments and blank lines allowed).")],
    *,
    fetch: FetchArgs,
) -> None:
    """Download images from a URL list into DATASET/<label>/; resumable, writes download_report.csv."""
    from ..acquire.download import download_url_list

    if not urls.is_file():
        raise ImgclfError(f"URL list {urls} does not exist", hint="give a file of label<TAB>url lines")
    res = download_url_list(urls, fetch.folder(), fetch.fetch_options(), workers=fetch.workers, progress=not fetch.quiet)
    for row in res.rows:
        if row.status == "malformed":
            typer.echo(f"skipped {row.detail}", err=True)
    typer.echo(res.summary())
    typer.echo(f"report: {res.report_path}")


def scrape(
    items: Annotated[str, typer.Option(help="Comma-separated items, e.g. blouse,hoodie,shirt.")],
    attributes: Annotated[str, typer.Option(help="Comma-separated attributes, e.g. striped,dotted,leopard.")],
    per_query: Annotated[int, typer.Option(help="Image URLs asked for per query.", min=1)] = 50,
    label_by: Annotated[str, typer.Option(help="Class label: attribute, item or item_attribute.")] = "attribute",
    provider: Annotated[str, typer.Option(help="Image search: auto, brave (BRAVE_SEARCH_API_KEY) or ddgs.")] = "auto",
    *,
    fetch: FetchArgs,
) -> None:
    """Search images for every attribute x item query, write the URL list, download it."""
    from ..acquire.scrape import COPYRIGHT_NOTICE
    from ..acquire.scrape import scrape as do_scrape

    folder, opts = fetch.folder(), fetch.fetch_options()
    typer.echo(f"note: {COPYRIGHT_NOTICE}")
    res = do_scrape(items.split(","), attributes.split(","), folder, per_query=per_query, provider=provider,
                    label_by=label_by, opts=opts, workers=fetch.workers, progress=not fetch.quiet)  # type: ignore[arg-type]
    typer.echo(f"{res.provider}: {len(res.queries)} queries, {res.urls} distinct URLs -> {res.url_list}")
    for query, reason in res.failed_queries:
        typer.echo(f"query {query!r} failed: {reason}", err=True)
    if res.conflicts:
        typer.echo(f"{res.conflicts} URLs were found for two labels; each is kept under its first label only")
    typer.echo(res.download.summary())
    typer.echo(f"report: {res.download.report_path}")


def dedup(
    dataset: DatasetOpt = None,
    images: ImagesOpt = None,
    distance: Annotated[Optional[int], typer.Option(help="Largest dhash Hamming distance of near duplicates (default data.duplicate_distance; 0 = exact only).", min=0)] = None,
    features: Annotated[bool, typer.Option("--features", help="Also group images whose CNN features are nearly parallel (cached, uses model.*, engine.*).")] = False,
    feature_threshold: Annotated[float, typer.Option(help="Cosine similarity from which --features calls two images duplicates.", min=0.0, max=1.0)] = DoctorConfig.duplicate_cosine,
    move_to: Annotated[Optional[Path], typer.Option(help="Move the extra copies into this folder instead of excluding them.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report; change nothing.")] = False,
    quiet: QuietOpt = False,
    config: ConfigOpt = None,
    set: SetOpt = None,
) -> None:
    """Find exact and near-duplicate images; keep one per group, exclude the rest (nothing is deleted)."""
    from ..acquire.dedup import dedup_dataset
    from ..acquire.report import write_dedup_report

    cfg, folder = resolve_dataset(config, set, dataset, images,
                                  [f"data.duplicate_distance={distance}"] if distance is not None else [])
    res = dedup_dataset(folder, cfg.data.duplicate_distance,
                        featurize=_features_fn(cfg, not quiet) if features else None, feature_threshold=feature_threshold,
                        move_to=move_to, dry_run=dry_run, progress=not quiet)
    html_path, csv_path = write_dedup_report(res)
    typer.echo(res.summary())
    typer.echo(f"report: {html_path} ({csv_path.name})")


def register(app: typer.Typer) -> None:
    app.command()(fetch_command(download))
    app.command()(fetch_command(scrape))
    app.command()(dedup)

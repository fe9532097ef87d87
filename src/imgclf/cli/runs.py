"""``imgclf runs``: list, show and compare the runs tracked in MLflow (see ``imgclf.tracking.store``)."""
from __future__ import annotations

import json
import time
from typing import Annotated, Any, Optional

import typer

from ..config.settings import load_config
from .options import ConfigOpt, SetOpt

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
_CELL = 40  # widest table cell; longer values are cut with "…"


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):  # MLflow keeps every metric as a float; counts read better without decimals
        s = str(int(v)) if v.is_integer() and abs(v) >= 2 else f"{v:.4f}"
    else:
        s = str(v)
    return s if len(s) <= _CELL else s[:_CELL - 1] + "…"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers] + [[_cell(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000)) if ms else "—"


def render_list(runs: list, store: str) -> str:
    """The ``runs list`` table."""
    from ..tracking.store import browse_hint

    if not runs:
        return f"no tracked runs in {store}"
    rows = [[r.run_id[:8], _when(r.start_time), r.experiment, r.tags.get("dataset"), r.tags.get("classifier"),
             r.tags.get("backbone"), r.metrics.get("accuracy"), r.metrics.get("class_avg_accuracy"), r.tags.get("command"),
             r.name] for r in runs]
    table = _table(["RUN", "STARTED", "EXPERIMENT", "DATASET", "CLASSIFIER", "BACKBONE", "ACCURACY", "CLASS-AVG", "COMMAND",
                    "NAME"], rows)
    warnings = "".join(f"\nwarning: {r.run_id[:8]}: {m}" for r in runs if (m := _incomplete(r)))
    return f"{table}\n{len(runs)} run(s) in {store}{warnings}\nbrowse: {browse_hint(store)}"


def _incomplete(run: Any) -> str | None:
    """What is wrong with the run directory a tracked run logged, when it is incomplete now (else None)."""
    from ..rundir.state import incomplete_info

    run_dir = run.tags.get("run_dir")
    info = incomplete_info(run_dir) if run_dir else None
    return f"{info['message']}; its figures here may not be its model's (hint: {info['hint']})" if info else None


def render_show(run: Any, history: dict[str, list[tuple[int, float]]], artifacts: list[str]) -> str:
    """The ``runs show`` report: header, tags, metrics, per-epoch curves, params, artifacts."""
    from ..tracking.query import metric_order

    lines = [f"run         {run.run_id}  ({run.name})  {run.status}",
             f"experiment  {run.experiment}", f"started     {_when(run.start_time)}", f"store       {run.store}",
             f"artifacts   {run.artifact_uri}"]
    if (incomplete := _incomplete(run)):
        lines.append(f"warning     {incomplete}")
    lines += ["", "tags"]
    lines += [f"  {k:<18} {v}" for k, v in sorted(run.tags.items()) if not k.startswith("mlflow.")]
    lines += ["", "metrics"] + [f"  {k:<34} {_cell(run.metrics[k])}" for k in metric_order(run.metrics)]
    if history:
        steps = sorted({s for h in history.values() for s, _ in h})
        by_key = {k: dict(h) for k, h in history.items()}
        lines += ["", "per epoch", _indent(_table(["epoch", *history], [[s, *(by_key[k].get(s) for k in history)] for s in steps]))]
    lines += ["", "params"] + [f"  {k:<34} {_cell(v)}" for k, v in sorted(run.params.items())]
    lines += ["", "files       " + ", ".join(artifacts)]
    return "\n".join(lines)


def render_compare(cmp: Any) -> str:
    """The ``runs compare`` table: one column per run (plus the difference when there are two)."""
    two = len(cmp.runs) == 2
    headers = ["", *(f"{chr(65 + i) if i < 26 else i}: {r.run_id[:8]}" for i, r in enumerate(cmp.runs))] + (["Δ B−A"] if two else [])
    pad = [""] if two else []
    rows: list[list[Any]] = [["name", *(r.name for r in cmp.runs), *pad]]
    rows += [[t, *(r.tags.get(t) for r in cmp.runs), *pad] for t in ("dataset", "preset", "classifier", "backbone", "command")]
    rows += [["params that differ", *([""] * len(cmp.runs)), *pad]]
    rows += [[f"  {k}", *v, *pad] for k, v in cmp.params] or [["  (none)", *([""] * len(cmp.runs)), *pad]]
    rows += [["metrics", *([""] * len(cmp.runs)), *pad]]
    for k, v in cmp.metrics:
        delta = [v[1] - v[0] if None not in v else None] if two else []
        rows.append([f"  {k}", *v, *(f"{d:+.4f}" if d is not None else "—" for d in delta)])
    return _table(headers, rows)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def register(app: typer.Typer) -> None:
    runs = typer.Typer(help="Run history (MLflow): list, show and compare tracked runs.", no_args_is_help=True)
    app.add_typer(runs, name="runs")

    @runs.command("list")
    def list_(dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Only runs of this dataset.")] = None,
              limit: Annotated[int, typer.Option(help="Show at most this many runs (newest first).")] = 100,
              json_: JsonOpt = False, config: ConfigOpt = None, set: SetOpt = None) -> None:
        """List tracked runs, newest first, with their test accuracy."""
        from ..tracking.query import list_runs
        from ..tracking.store import redact_uri, store_uri
        from .pipeline import data_root_line

        cfg = load_config(config, set)
        found = list_runs(cfg, dataset, limit)
        if json_:
            typer.echo(json.dumps([r.to_dict() for r in found]))
        else:
            typer.echo(render_list(found, redact_uri(store_uri(cfg))))
            typer.echo(data_root_line(cfg))

    @runs.command()
    def show(run: Annotated[str, typer.Argument(help="Run id (or its first characters), run name, or run directory.")],
             json_: JsonOpt = False, config: ConfigOpt = None, set: SetOpt = None) -> None:
        """Show one run: tags, every metric, per-epoch curves, params and stored files."""
        from ..tracking.query import artifact_paths, find_run, metric_history

        cfg = load_config(config, set)
        r = find_run(cfg, run)
        history, files = metric_history(cfg, r), artifact_paths(r)
        if json_:
            typer.echo(json.dumps({**r.to_dict(), "history": history, "artifacts": files}))
        else:
            typer.echo(render_show(r, history, files))

    @runs.command()
    def compare(run: Annotated[list[str], typer.Argument(help="Two or more runs: ids, id prefixes, names or run directories.")],
                json_: JsonOpt = False, config: ConfigOpt = None, set: SetOpt = None) -> None:
        """Compare runs side by side: the params that differ and every metric (per class too)."""
        from ..tracking.query import compare_runs

        cmp = compare_runs(load_config(config, set), run)
        typer.echo(json.dumps(cmp.to_dict()) if json_ else render_compare(cmp))

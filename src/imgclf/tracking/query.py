"""Reading the run history back: list, find, and compare runs, for ``imgclf runs``."""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..config.settings import Config
from ..util.errors import ImgclfError, TrackingError
from .store import HEADLINE_METRICS, TRACKING_FILE, TrackedRun, client_for, mlflow_quiet, read_record, redact_uri, store_uri


@contextlib.contextmanager
def _reading(uri: str) -> Iterator[None]:
    """Store errors while reading become one TrackingError naming the store."""
    with mlflow_quiet():
        try:
            yield
        except ImgclfError:
            raise
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise TrackingError(f"cannot read the tracking store {redact_uri(uri)}: {type(e).__name__}: {first}",
                                hint="check tracking.uri / $MLFLOW_TRACKING_URI and that the server is up") from None


def _tracked(run: Any, experiments: dict[str, str], uri: str) -> TrackedRun:
    i = run.info
    return TrackedRun(run_id=i.run_id, name=i.run_name or "", experiment=experiments.get(i.experiment_id, i.experiment_id),
                      status=i.status, start_time=int(i.start_time or 0), tags=dict(run.data.tags),
                      params=dict(run.data.params), metrics=dict(run.data.metrics), artifact_uri=i.artifact_uri,
                      store=redact_uri(uri))


def _all_experiments(client: Any) -> dict[str, str]:
    return {e.experiment_id: e.name for e in client.search_experiments(max_results=50000)}


def list_runs(cfg: Config, dataset: str | None = None, limit: int = 100) -> list[TrackedRun]:
    """Runs of the store, newest first; only those of ``dataset`` when given."""
    uri = store_uri(cfg)
    with _reading(uri):
        client = client_for(uri, create=False)
        exps = _all_experiments(client)
        if not exps:
            return []
        filt = ""
        if dataset is not None:
            q = "'" if "'" not in dataset else '"'
            filt = f"tags.dataset = {q}{dataset}{q}"
        runs = client.search_runs(list(exps), filter_string=filt, order_by=["attributes.start_time DESC"], max_results=limit)
        return [_tracked(r, exps, uri) for r in runs]


def find_run(cfg: Config, ref: str) -> TrackedRun:
    """The run named by ``ref``: a run directory, a run id, a unique prefix of one, or a unique run name."""
    uri = store_uri(cfg)
    record = read_record(Path(ref)) if Path(ref).is_dir() else {}
    if Path(ref).is_dir() and not record.get("run_id"):
        raise TrackingError(f"run directory {ref} has no {TRACKING_FILE}: it was never tracked",
                            hint=f"re-run `imgclf evaluate --run-dir {ref}` with tracking.enabled=true")
    if record.get("tracking_uri") and "***" not in record["tracking_uri"]:
        uri = record["tracking_uri"]
    with _reading(uri):
        client = client_for(uri, create=False)
        exps = _all_experiments(client)
        if record.get("run_id"):
            return _tracked(client.get_run(record["run_id"]), exps, uri)
        if re.fullmatch(r"[0-9a-f]{32}", ref):
            with contextlib.suppress(Exception):  # not an id after all: try it as a prefix or a name
                return _tracked(client.get_run(ref), exps, uri)
        runs = client.search_runs(list(exps), max_results=50000) if exps else []
        hits = [r for r in runs if r.info.run_id == ref] or [r for r in runs if r.info.run_id.startswith(ref.lower())] \
            or [r for r in runs if r.info.run_name == ref]
        if len(hits) == 1:
            return _tracked(hits[0], exps, uri)
    if not hits:
        raise TrackingError(f"no tracked run matches {ref!r} in {redact_uri(uri)} ({len(runs)} runs there)",
                            hint="give a run id (or its first characters), a run name or a run directory; see `imgclf runs list`")
    raise TrackingError(f"{ref!r} matches {len(hits)} runs: {', '.join(r.info.run_id[:8] for r in hits[:10])}",
                        hint="give more characters of the run id")


def metric_history(cfg: Config, run: TrackedRun) -> dict[str, list[tuple[int, float]]]:
    """Metrics logged at more than one step (per-epoch training curves): ``{key: [(step, value)]}``."""
    uri = run.store if "***" not in run.store else store_uri(cfg)
    out = {}
    with _reading(uri):
        client = client_for(uri, create=False)
        for key in sorted(run.metrics):
            hist = client.get_metric_history(run.run_id, key)
            if len({m.step for m in hist}) > 1:
                out[key] = sorted((int(m.step), float(m.value)) for m in hist)
    return out


def artifact_paths(run: TrackedRun) -> list[str]:
    """Top-level artifacts of ``run`` (folders end with ``/``)."""
    with _reading(run.store):
        client = client_for(run.store, create=False)
        return [f.path + ("/" if f.is_dir else "") for f in client.list_artifacts(run.run_id)]


def metric_order(keys: Any) -> list[str]:
    """Headline metrics first, then the rest (per-class ones grouped by name) alphabetically."""
    keys = set(keys)
    return [k for k in HEADLINE_METRICS if k in keys] + sorted(keys - set(HEADLINE_METRICS))


@dataclass
class Comparison:
    """Side by side: the params that differ and every metric, one column per run."""

    runs: list[TrackedRun]
    params: list[tuple[str, list[str | None]]]
    metrics: list[tuple[str, list[float | None]]]

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [{"run_id": r.run_id, "name": r.name, "experiment": r.experiment, "tags": r.tags} for r in self.runs],
                "params": {k: v for k, v in self.params}, "metrics": {k: v for k, v in self.metrics}}


def compare_runs(cfg: Config, refs: list[str]) -> Comparison:
    """Find each run of ``refs`` and line up their differing params and all their metrics."""
    if len(refs) < 2:
        raise TrackingError(f"compare needs at least two runs; got {len(refs)}", hint="e.g. imgclf runs compare 3f2a 9b1c")
    runs = [find_run(cfg, r) for r in refs]
    pkeys = sorted(set().union(*(r.params for r in runs)))
    params = [(k, vals) for k in pkeys if len(set(vals := [r.params.get(k) for r in runs])) > 1]
    metrics = [(k, [r.metrics.get(k) for r in runs]) for k in metric_order(set().union(*(r.metrics for r in runs)))]
    return Comparison(runs, params, metrics)

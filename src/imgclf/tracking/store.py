"""Run history in MLflow: every training or evaluation command logs its run directory.

One run directory is one MLflow run: ``imgclf train`` then ``imgclf evaluate`` on the same
directory add to the same MLflow run (its id is kept in RUN_DIR/tracking.json); a later command
with a different configuration starts a new one, since MLflow parameters cannot change.

The store is ``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite file in the data
root (``sqlite:///<data.root>/mlruns.db``, artifacts in ``<data.root>/mlartifacts``; the data root is
found the same way from any folder of a project, see ``imgclf.config.settings.find_data_root``), so
``mlflow ui --backend-store-uri <that uri>`` shows the same runs. Tracking never costs a run:
any failure to log is one warning line on stderr. MLflow is imported only when used (it is slow).
"""
from __future__ import annotations

import contextlib
import getpass
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..bundle.folder import META
from ..config.settings import Config, flatten
from ..rundir.layout import RunDir
from ..util.errors import TrackingError
from ..util.files import read_json, write_json

TRACKING_FILE = RunDir(Path(".")).tracking.name
# A tracking server that is down must cost seconds, not MLflow's default of minutes of retries.
_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
HEADLINE_METRICS = ("accuracy", "class_avg_accuracy", "macro_auc")
_BATCH = 100  # MLflow accepts at most 100 params or tags per log_batch call


@dataclass
class TrackedRun:
    """One MLflow run as the ``runs`` commands show it."""

    run_id: str
    name: str
    experiment: str
    status: str
    start_time: int  # ms since the epoch
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    artifact_uri: str
    store: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ---------------------------------------------------------------- names


def store_uri(cfg: Config) -> str:
    """``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else the SQLite file in the data root."""
    uri = cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri:
        return uri
    return "sqlite:///" + (Path(cfg.data.root).resolve() / "mlruns.db").as_posix()


def experiment_name(cfg: Config) -> str:
    """``tracking.experiment``, else the dataset's name."""
    return cfg.tracking.experiment or cfg.dataset_name()


def sanitize_key(name: str) -> str:
    """A metric or parameter name MLflow accepts on every OS (other characters become ``_``)."""
    return re.sub(r"[^\w.\- ]", "_", name)[:250] or "_"


def browse_hint(uri: str) -> str:
    """How to see the runs of the store ``uri`` in MLflow's web UI."""
    if uri.startswith(("http://", "https://")):
        return f"open {redact_uri(uri)} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


# ---------------------------------------------------------------- logging a run


def log_run(cfg: Config, run_dir: str | os.PathLike, command: str) -> str | None:
    """Log ``run_dir`` (after ``command``) to MLflow; returns the MLflow run id.

    Does nothing when ``tracking.enabled`` is false. Never raises: a store that cannot be
    reached or written prints one warning line and returns None; the run directory stays intact.
    """
    if not cfg.tracking.enabled:
        return None
    uri = store_uri(cfg)
    try:
        with mlflow_quiet():
            return _log(cfg, Path(run_dir), command, uri)
    except Exception as e:  # tracking is a record of the run, never a reason to lose it
        first = (str(e).strip().splitlines() or [""])[0][:200]
        print(f"warning: run not tracked in MLflow store {redact_uri(uri)}: {type(e).__name__}: {first} "
              f"(outputs are kept in {run_dir}; set tracking.enabled=false to skip tracking)", file=sys.stderr)
        return None


def _log(cfg: Config, rd: Path, command: str, uri: str) -> str:
    from mlflow.entities import Metric, Param, RunTag

    client = client_for(uri, create=True)
    exp_name = experiment_name(cfg)
    exp_id = _experiment_id(client, exp_name, _artifact_location(uri))
    results = _results(rd, command)
    params = {k: _param_value(k, v) for k, v in flatten(cfg).items() if k not in _unused_keys(cfg)}
    params.update({f"classifier.{k}": _param_value(k, v) for k, v in (results.get("classifier") or {}).items()
                   if isinstance(v, (str, int, float, bool))})
    params = {sanitize_key(k): v[:6000] for k, v in params.items()}
    tags = _tags(cfg, rd, command, results)
    record = read_record(rd)
    run = _resumable(client, record, uri, params)
    if run is None:
        run = client.create_run(exp_id, run_name=rd.name, tags=tags)
        if record.get("run_id"):
            record.setdefault("previous_run_ids", []).append(record["run_id"])
    else:  # a later command on the same run: it keeps the command that made it, and lists every one since
        first = run.data.tags.get("command", command)
        tags.update({"command": first, "mlflow.source.name": f"imgclf {first}",
                     "commands": f"{run.data.tags.get('commands', first)}, {command}"})
    run_id = run.info.run_id
    record.update({"tracking_uri": redact_uri(uri), "experiment": exp_name, "experiment_id": exp_id, "run_id": run_id})
    _write_record(rd, record, command, "logging")  # the id is on disk even if logging breaks off below
    now = int(time.time() * 1000)
    try:
        new_params = {k: v for k, v in params.items() if k not in run.data.params}
        _batched(client, run_id, params=[Param(k, v) for k, v in new_params.items()])
        _batched(client, run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        metrics = [Metric(k, v, now, 0) for k, v in metric_values(results).items()]
        metrics += [m for m in _history_metrics(results.get("training_history"), now) if m.key not in run.data.metrics]
        _batched(client, run_id, metrics=metrics)
        for name in RunDir.ARTIFACTS:
            if (rd / name).is_file():
                client.log_artifact(run_id, str(rd / name))
        if (rd / "model").is_dir():
            client.log_artifacts(run_id, str(rd / "model"), "model")
    except Exception:
        with contextlib.suppress(Exception):  # the store may be the thing that broke
            client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    _write_record(rd, record, command, "logged")
    return run_id


def _results(rd: Path, command: str) -> dict[str, Any]:
    """What the command produced: test metrics after evaluate/run, the bundle's description after train."""
    run = RunDir(rd)
    if command != "train" and run.metrics.is_file():
        return read_json(run.metrics)
    meta = run.model / META
    if not meta.is_file():
        return {}
    m = read_json(meta)
    return {k: m[k] for k in ("classifier", "backbone", "resolution", "training_history") if k in m}


def metric_values(metrics: dict[str, Any]) -> dict[str, float]:
    """Scalar metrics of a metrics.json, per-class ones as ``<name>.<label>`` (e.g. ``roc_auc.cat``).

    Counts such as n_train are included; undefined values (None, e.g. an AUC without positives) are not.
    """
    per_class = {k: v for k, v in metrics.items()
                 if isinstance(v, dict) and v and all(_is_number(x) or x is None for x in v.values())}
    names = _label_names([*metrics.get("labels", []), *(lab for v in per_class.values() for lab in v)])
    out: dict[str, float] = {}
    for key, v in metrics.items():
        if _is_number(v) and key != "resolution":  # resolution is a setting: the param model.resolution
            out[sanitize_key(key)] = float(v)
        elif key in per_class:
            out.update({f"{sanitize_key(key)}.{names[str(lab)]}": float(x) for lab, x in v.items() if x is not None})
    return out


def _label_names(labels: list[Any]) -> dict[str, str]:
    """A distinct metric-safe name per label: two labels that sanitize alike ("a+b", "a*b") must not merge."""
    out: dict[str, str] = {}
    for lab in map(str, labels):
        if lab in out:
            continue
        base = name = sanitize_key(lab)
        n = 2
        while name in out.values():
            name, n = f"{base}_{n}", n + 1
        out[lab] = name
    return out


def _history_metrics(history: Any, now: int) -> list[Any]:
    """Per-epoch values as stepped metrics; accepts a list of per-epoch dicts or a dict of lists."""
    from mlflow.entities import Metric

    if isinstance(history, dict):
        series = {k: v for k, v in history.items() if isinstance(v, list)}
        n = max((len(v) for v in series.values()), default=0)
        steps = history.get("epoch") if isinstance(history.get("epoch"), list) else list(range(1, n + 1))
        rows = [{k: v[i] for k, v in series.items() if i < len(v)} | {"epoch": steps[i]} for i in range(n)]
    elif isinstance(history, list):
        rows = [r for r in history if isinstance(r, dict)]
    else:
        return []
    out = []
    for i, row in enumerate(rows):
        step = int(row["epoch"]) if _is_number(row.get("epoch")) else i + 1
        out += [Metric(sanitize_key(k), float(v), now, step) for k, v in row.items() if k != "epoch" and _is_number(v)]
    return out


def _unused_keys(cfg: Config) -> set[str]:
    """Settings that played no part in the run: ``data.dataset`` when ``data.images`` names the folder."""
    return {"data.dataset"} if cfg.data.images else set()


def _tags(cfg: Config, rd: Path, command: str, results: dict[str, Any]) -> dict[str, str]:
    clf = results.get("classifier") or {}
    tags = {
        "dataset": cfg.dataset_name(),
        "backbone": str(results.get("backbone") or cfg.model.backbone),
        "classifier": str(clf.get("type") or cfg.train.classifier),
        "preset": cfg.train.preset,
        "command": command,  # the command that made this MLflow run (later ones on the same run: "commands")
        "commands": command,
        "run_dir": str(rd.resolve()),
        "mlflow.source.name": f"imgclf {command}",
        "mlflow.source.type": "LOCAL",
    }
    with contextlib.suppress(Exception):  # no user name in some containers
        tags["mlflow.user"] = getpass.getuser()
    commit, dirty = _git_state()
    if commit:
        tags.update({"git_commit": commit, "git_dirty": str(dirty).lower(), "mlflow.source.git.commit": commit})
    return tags


def _git_state() -> tuple[str | None, bool]:
    """(HEAD commit, uncommitted changes?) of the working directory's git repository, if any."""
    def git(*args: str) -> str | None:
        try:
            p = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=os.getcwd())
        except (OSError, subprocess.SubprocessError):
            return None
        return p.stdout.strip() if p.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None, False
    return commit, bool(git("status", "--porcelain", "--untracked-files=no"))


def _resumable(client: Any, record: dict[str, Any], uri: str, params: dict[str, str]) -> Any:
    """The run this directory logged before, if it is in this store and its params still hold."""
    if record.get("tracking_uri") != redact_uri(uri) or not record.get("run_id"):
        return None
    try:
        run = client.get_run(record["run_id"])
    except Exception:  # deleted from the store, or the store was replaced
        return None
    if run.info.lifecycle_stage != "active":
        return None
    old = run.data.params
    return None if any(k in old and old[k] != v for k, v in params.items()) else run


def _batched(client: Any, run_id: str, params: list | None = None, tags: list | None = None, metrics: list | None = None) -> None:
    for i in range(0, len(params or []), _BATCH):
        client.log_batch(run_id, params=params[i:i + _BATCH])
    for i in range(0, len(tags or []), _BATCH):
        client.log_batch(run_id, tags=tags[i:i + _BATCH])
    for i in range(0, len(metrics or []), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])


def _param_value(key: str, v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v)
    return redact_uri(s) if key.endswith("uri") else s


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not (isinstance(v, float) and math.isinf(v))


def redact_uri(uri: str) -> str:
    """A URI without the password it may carry (user:secret@host)."""
    return re.sub(r"(://[^/:@]+):[^/@]*@", r"\1:***@", uri)


# ---------------------------------------------------------------- the run dir's record


def read_record(rd: Path) -> dict[str, Any]:
    p = rd / TRACKING_FILE
    try:
        return read_json(p) if p.is_file() else {}
    except ValueError:
        return {}  # a damaged record only means the next log starts a new MLflow run


def _write_record(rd: Path, record: dict[str, Any], command: str, status: str) -> None:
    record.update({"command": command, "status": status, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    write_json(rd / TRACKING_FILE, record)


# ---------------------------------------------------------------- MLflow plumbing


@contextlib.contextmanager
def mlflow_quiet() -> Iterator[None]:
    """Short HTTP timeouts without retries, and no INFO chatter from MLflow's database migrations."""
    import mlflow  # noqa: F401  (first, because importing it resets the levels of its loggers)

    saved_env = {k: os.environ.get(k) for k in _HTTP_ENV}
    for k, v in _HTTP_ENV.items():
        os.environ.setdefault(k, v)  # a user's explicit setting wins
    loggers = [logging.getLogger(n) for n in ("alembic", "mlflow", "urllib3")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?")[0]
    return None if path in ("", ":memory:") else Path(path)


def _artifact_location(uri: str) -> str | None:
    """Artifacts of a SQLite store go beside the database file (MLflow's default is ./mlruns of the cwd)."""
    db = _sqlite_path(uri)
    return (db.parent.resolve() / "mlartifacts").as_uri() if db else None


def client_for(uri: str, create: bool) -> Any:
    db = _sqlite_path(uri)
    if db is not None:
        if create:
            db.parent.mkdir(parents=True, exist_ok=True)
        elif not db.is_file():
            raise TrackingError(f"no tracking store at {db}",
                                hint="the store is in the data folder: $IMGCLF_DATA_DIR, else the nearest data/ upward with "
                                     "imgclf data, else ~/.local/share/imgclf; run from your project's folder, set "
                                     "IMGCLF_DATA_DIR, or point tracking.uri / $MLFLOW_TRACKING_URI at your store")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage != "active":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location)

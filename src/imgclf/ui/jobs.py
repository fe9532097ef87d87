"""Training jobs the web UI starts: exactly what ``imgclf run`` runs, in a process of its own, one per dataset.

    RUNS/<run>/                       the run directory the job writes (RUNS: the dataset's runs folder, by default
                                      DATA_ROOT/runs/<dataset>, where `imgclf run` puts a run without --run-dir;
                                      <run>: the time it started, as `imgclf run` names it)
    RUNS/.jobs/job.json               the dataset's newest job (:class:`Job`): a UI started again still sees it
    RUNS/.jobs/<run>/config.json      the UI's own settings the run starts from (its --config)
    RUNS/.jobs/<run>/log.txt          the job's stdout and stderr
    RUNS/.jobs/<run>/progress.json    its progress file (:mod:`imgclf.util.progress`)

The job is ``python -m imgclf run --images DATASET --run-dir RUNS/<run> --config ... --preset P [--time-limit S]
[--set k=v ...]`` in a new session (its own process group), so a crash, an out-of-memory kill or a Cancel ends
that process only, never the UI's server. Its settings are checked by :func:`imgclf.config.settings.load_config`
before anything starts, as the command itself would check them. Cancel sends SIGINT to the group and SIGKILL
after :data:`GRACE_S`; a run that did not finish keeps its INCOMPLETE marker (:mod:`imgclf.rundir.state`), so it
never looks finished.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from filelock import FileLock

from ..config.settings import SECTIONS, Config, load_config
from ..config.values import parse_override
from ..pipeline.steps import default_run_dir
from ..rundir.layout import RunDir
from ..rundir.state import read_incomplete
from ..serve.errors import Conflict
from ..util.errors import ConfigError, NotFound
from ..util.files import read_json, write_json
from ..util.progress import ENV as PROGRESS_ENV

GRACE_S = 3.0  # Cancel: SIGINT first, SIGKILL after this; the process is gone within 5 s
STATES = ("running", "finished", "failed", "cancelled")
FIXED = ("data.images", "data.dataset", "data.root")  # the dataset the UI shows, and where its runs go
JOBS = ".jobs"


@dataclasses.dataclass
class Job:
    """One training job: ``state`` one of :data:`STATES`; times are Unix seconds."""

    id: str  # the run directory's name
    run_dir: str
    state: str
    pid: int
    create_time: float  # the process's start time (psutil): tells it from a later process given the same pid
    started: float
    preset: str
    time_limit_s: float
    settings: list[str]
    command: list[str]
    ended: float | None = None
    exit_code: int | None = None
    message: str = ""  # what ended it, in one line, when it did not finish
    cancel_requested: bool = False

    def to_dict(self) -> dict[str, Any]:
        end = self.ended or time.time()
        return {**dataclasses.asdict(self), "elapsed_s": round(end - self.started, 1),
                "started_at": _iso(self.started), "ended_at": _iso(self.ended) if self.ended else None}


class JobRunning(Conflict):
    """A training job of this dataset runs already."""

    reason = "job_running"


class JobManager:
    """The training jobs of the dataset ``images_dir``, with the settings of ``cfg`` (the UI's own), writing their
    runs into ``runs`` (default: where `imgclf run` puts them)."""

    def __init__(self, cfg: Config, images_dir: str | os.PathLike, runs: str | os.PathLike | None = None):
        self.images = Path(images_dir).resolve()
        self.base = copy.deepcopy(cfg)
        self.base.data.images = str(self.images)
        self.base.data.root = str(Path(cfg.data.root).resolve())
        self.runs = Path(runs).resolve() if runs is not None else default_run_dir(self.base).parent
        self.folder = self.runs / JOBS
        self._lock = threading.RLock()
        self._procs: dict[str, subprocess.Popen] = {}  # the jobs this process started
        self._exited: dict[str, threading.Event] = {}  # set once such a job's end is recorded

    def validate(self, preset: str, time_limit_s: float, settings: list[str]) -> Config:
        """The run's config, checked as `imgclf run` checks it (a ConfigError with the validator's message)."""
        for item in settings:
            sec, key, _ = parse_override(item)
            if f"{sec}.{key}" in FIXED:
                raise ConfigError(f"{sec}.{key} cannot be set here: the Train page trains the dataset this UI shows "
                                  f"({self.images}) into {self.runs}", hint=f"drop the line {item!r}")
        flags = [f"train.preset={json.dumps(preset)}", f"train.time_limit_s={float(time_limit_s)}"]
        return load_config(None, settings, base=self.base, flags=flags)

    def start(self, preset: str, time_limit_s: float = 0.0, settings: list[str] | None = None) -> Job:
        """Start a training job; a ConfigError before anything starts, a :class:`JobRunning` while one runs."""
        settings = [s.strip() for s in settings or () if s.strip()]
        cfg = self.validate(preset, time_limit_s, settings)
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._lock, FileLock(str(self.folder / "lock"), thread_local=False):  # other UI servers of this dataset too
            running = self.current()
            if running is not None and running.state == "running":
                raise JobRunning(f"a training job of {self.images.name} is running: run {running.id}, started "
                                 f"{running.to_dict()['started_at']} (pid {running.pid}); only one runs per dataset",
                                 hint="wait for it to finish, or cancel it on the Train page")
            run_dir = _free(self.runs / default_run_dir(cfg).name)
            files = self.folder / run_dir.name
            write_json(files / "config.json", self._inherited())
            command = [sys.executable, "-m", "imgclf", "run", "--images", str(self.images), "--run-dir", str(run_dir),
                       "--config", str(files / "config.json"), "--preset", preset,
                       *(["--time-limit", f"{time_limit_s:g}"] if time_limit_s else []),
                       *(a for s in settings for a in ("--set", s))]
            env = {**os.environ, PROGRESS_ENV: str(files / "progress.json"), "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
            with open(files / "log.txt", "wb") as log:
                proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
            with contextlib.suppress(OSError):  # the kernel's out-of-memory killer takes the job before the UI
                Path(f"/proc/{proc.pid}/oom_score_adj").write_text("500")
            job = Job(run_dir.name, str(run_dir), "running", proc.pid, _create_time(proc.pid), time.time(), preset,
                      float(time_limit_s), settings, command)
            self._save(job)
            self._procs[job.id], self._exited[job.id] = proc, threading.Event()
            threading.Thread(target=self._watch, args=(job.id, proc), name=f"job-{job.id}", daemon=True).start()
        return job

    def current(self) -> Job | None:
        """The dataset's newest job (None when none ever ran), its end recorded once its process is gone."""
        with self._lock:
            job = self._load()
            if job is not None and job.state == "running" and not self._alive(job):
                proc = self._procs.get(job.id)
                job = self._end(job, proc.wait() if proc is not None else None)
            return job

    def cancel(self, job_id: str) -> Job:
        """Stop job ``job_id`` if it runs: SIGINT to its process group, SIGKILL after :data:`GRACE_S`; returns it, ended."""
        with self._lock:
            job = self.current()
            if job is None or job.id != job_id or job.state != "running":
                raise NotFound(f"training job {job_id!r} of {self.images.name} is not running"
                               + (f" (the newest is {job.id}, {job.state})" if job else ""), reason="no_job")
            job.cancel_requested = True
            self._save(job)
        self._signal(job, signal.SIGINT)
        if not self._gone(job, GRACE_S):
            self._signal(job, signal.SIGKILL)
            self._gone(job, 1.5)
        return self.current() or job

    def progress(self, job: Job) -> dict[str, Any] | None:
        """The job's progress file (see :mod:`imgclf.util.progress`) and its ``age_s``; None before its first write."""
        try:
            p = read_json(self.folder / job.id / "progress.json")
        except (OSError, ValueError):
            return None
        return {**p, "age_s": round(max(0.0, time.time() - float(p.get("updated", 0))), 1)}

    def log_tail(self, job: Job, max_bytes: int) -> dict[str, Any]:
        """The last ``max_bytes`` of the job's log: {text, size, truncated, path}."""
        path = self.folder / job.id / "log.txt"
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - max_bytes))
                data = f.read()
        except OSError:
            size, data = 0, b""
        return {"text": data.decode("utf-8", "replace"), "size": size, "truncated": size > len(data), "path": str(path)}

    def _inherited(self) -> dict[str, dict[str, Any]]:
        """The UI's settings that differ from the defaults (and data.root), the sections a run reads."""
        default, mine = Config().to_dict(), self.base.to_dict()
        out = {sec: {k: v for k, v in mine[sec].items() if v != default[sec].get(k)}
               for sec in SECTIONS if sec != "serve"}
        out["data"] = {**{k: v for k, v in out["data"].items() if k not in ("images", "dataset")}, "root": self.base.data.root}
        return {sec: kv for sec, kv in out.items() if kv}

    def _watch(self, job_id: str, proc: subprocess.Popen) -> None:
        code = proc.wait()
        with self._lock:
            job = self._load()
            if job is not None and job.id == job_id and job.state == "running":
                self._end(job, code)
        self._exited[job_id].set()

    def _end(self, job: Job, code: int | None) -> Job:
        """Record the end of ``job`` whose process exited with ``code`` (None: unknown, it was not our child)."""
        job.ended, job.exit_code = time.time(), code
        whole = read_incomplete(job.run_dir) is None and RunDir(job.run_dir).metrics.is_file()
        if whole and code in (0, None):
            job.state, job.message = "finished", ""
        elif job.cancel_requested:
            job.state, job.message = "cancelled", "cancelled from the UI"
        else:
            job.state, job.message = "failed", self._failure(job, code)
        self._save(job)
        return job

    def _failure(self, job: Job, code: int | None) -> str:
        if code is None:
            return "its process ended while no UI watched it, before the run was complete"
        if code < 0:
            name = signal.Signals(-code).name
            return (f"killed by {name}" + (" from outside imgclf (the out-of-memory killer, or `kill -9`)"
                                           if -code == signal.SIGKILL else ""))
        lines = self.log_tail(job, 8192)["text"].splitlines()
        said = [ln for ln in lines if ln.startswith(("error:", "hint:"))][-2:]
        return f"exit code {code}" + (f": {' '.join(said)}" if said else "; see its log")

    def _alive(self, job: Job) -> bool:
        proc = self._procs.get(job.id)
        if proc is not None:
            return proc.poll() is None
        try:
            p = psutil.Process(job.pid)
            return abs(p.create_time() - job.create_time) < 0.5 and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def _signal(self, job: Job, sig: int) -> None:
        if self._alive(job):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, sig)  # the job's session: pid == its process group

    def _gone(self, job: Job, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the job's process to end (and, ours, its end to be recorded)."""
        done = self._exited.get(job.id)
        if done is not None:
            return done.wait(timeout)
        end = time.monotonic() + timeout
        while self._alive(job):
            if time.monotonic() > end:
                return False
            time.sleep(0.05)
        return True

    def _load(self) -> Job | None:
        try:
            return Job(**read_json(self.folder / "job.json"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):  # a record of another version, or damaged: nothing to show
            return None

    def _save(self, job: Job) -> None:
        write_json(self.folder / "job.json", dataclasses.asdict(job))


def _free(run_dir: Path) -> Path:
    """``run_dir``, or ``run_dir-2``, ``-3``, ... when a run started in the same second has it."""
    out, n = run_dir, 1
    while out.exists():
        n += 1
        out = run_dir.with_name(f"{run_dir.name}-{n}")
    return out


def _create_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))

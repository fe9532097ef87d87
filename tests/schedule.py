"""The order in which xdist hands test files to its workers: the costliest first.

xdist's ``--dist loadfile`` gives each worker whole files, in order of their number of tests; a file of three
long tests (Ray, torchrun) then starts last and the run ends on one busy worker. Here each file (a *scope*)
is sent in order of its measured seconds, from ``durations.json`` beside this module, longest first, so
the short files fill the gaps at the end. Files that share a costly session fixture form one scope, so one
worker builds it once: the Ray tests share one Ray instance.

``IMGCLF_STORE_DURATIONS=1 make test`` rewrites ``durations.json`` from the run (the seconds each scope's
tests took, setup and teardown included). A file missing from it is costed by its number of tests; a stale
figure only changes the order, never what runs.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from xdist.scheduler import LoadScopeScheduling

DURATIONS = Path(__file__).with_name("durations.json")
SHARED = {"tests/scale/test_ray_": "tests/scale/test_ray_*"}  # file prefix -> the scope of all such files
SECONDS_PER_TEST = 0.3  # a file not in durations.json: most tests of a new file are short


def scope_of(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return next((scope for prefix, scope in SHARED.items() if path.startswith(prefix)), path)


def order_by_cost(items: list) -> None:
    """Sort ``items`` (in place, each file's own order kept) so that the costliest scope comes first."""
    try:
        known = json.loads(DURATIONS.read_text())
    except (OSError, ValueError):
        known = {}
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[scope_of(item.nodeid)] += 1
    cost = {s: known.get(s, n * SECONDS_PER_TEST) for s, n in counts.items()}
    first = {}
    for i, item in enumerate(items):
        first.setdefault(scope_of(item.nodeid), i)
    items.sort(key=lambda it: (-cost[scope_of(it.nodeid)], first[scope_of(it.nodeid)]))


class CostOrderScheduling(LoadScopeScheduling):
    """``--dist loadfile`` with the scopes above, sent in collection order (which :func:`order_by_cost` set)."""

    def __init__(self, config, log=None):
        config.option.loadscopereorder = False
        super().__init__(config, log)

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)


class DurationRecorder:
    """Sums, in the controlling process, each scope's reported seconds; writes them at the end when asked."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, report) -> None:
        self.seconds[scope_of(report.nodeid)] += report.duration

    def write(self) -> None:
        if os.environ.get("IMGCLF_STORE_DURATIONS") and self.seconds:
            rounded = {s: round(t, 1) for s, t in sorted(self.seconds.items(), key=lambda kv: -kv[1])}
            tmp = DURATIONS.with_suffix(".tmp")
            tmp.write_text(json.dumps(rounded, indent=0) + "\n")
            tmp.replace(DURATIONS)

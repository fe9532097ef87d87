"""The predictions file of ``imgclf predict --ray --out FILE``: rows streamed in as batches finish, and a
job started again after a kill goes on where it stopped.

Each row is local predict's row (``path``, ``label``, ``score``, ``scores``, ... or ``error``) and the
``size`` and ``mtime_ns`` of the file when it was read. On a rerun, a listed file whose row is there and
whose size and mtime are unchanged is skipped; a changed one is predicted again (its old row dropped).
So however often a job is killed and started again, each image ends up in the file exactly once.

- ``.jsonl``: one JSON object a line, appended batch by batch; a line cut short by a kill is dropped.
- ``.parquet``: each batch a part file (``FILE.parts/part-NNNNNN.parquet``, written atomically); when the
  job ends they and the rows of an earlier ``FILE`` become one ``FILE`` (atomically), the parts removed.
"""
from __future__ import annotations

import json
import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ..util.errors import ImgclfError
from ..util.files import atomic_path, write_text
from .workers import prediction_schema, record_row

FORMATS = (".jsonl", ".parquet")
Stamp = tuple[int | None, int | None]  # (size, mtime_ns) of a file; (None, None) where it cannot be read

#: The columns of the driver's listing, before the prediction's.
LISTING_SCHEMA = pa.schema([("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64())])


def stamp(path: str) -> Stamp:
    """What tells a file changed: its size and modification time (as the feature cache's inputs do)."""
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    return st.st_size, st.st_mtime_ns


def listing_table(paths: Sequence[str], stamps: Sequence[Stamp]) -> pa.Table:
    """The driver's listing as the dataset's input rows."""
    return pa.table({"path": list(paths), "size": [s for s, _ in stamps], "mtime_ns": [m for _, m in stamps]},
                    schema=LISTING_SCHEMA)


def open_predictions(out: Path, labels: Sequence[str], listed: dict[str, Stamp]) -> "PredictionsFile":
    """The predictions file ``out`` for a bundle of ``labels`` and the files ``listed`` now (path → stamp)."""
    kinds = {".jsonl": JsonlPredictions, ".parquet": ParquetPredictions}
    if out.suffix not in kinds:
        raise ImgclfError(f"--out {out}: expected a file ending in {' or '.join(FORMATS)}, got {out.suffix or 'no suffix'!r}",
                          hint="e.g. --out predictions.jsonl or --out predictions.parquet")
    return kinds[out.suffix](out, labels, listed)


class PredictionsFile(ABC):
    """Rows already written (:attr:`done`: their paths, files unchanged since), then :meth:`write` per batch
    and :meth:`close` at the end; :attr:`rows` counts the file's rows."""

    def __init__(self, out: Path, labels: Sequence[str], listed: dict[str, Stamp]):
        self.out, self.listed = out, listed
        self.schema = pa.unify_schemas([LISTING_SCHEMA, prediction_schema(labels)])
        self.done: set[str] = set()
        self._seen: set[str] = set()
        self.rows = 0
        self.errors = 0  # rows of unreadable images

    def _current(self, path: str, recorded: Stamp) -> bool:
        """Whether a row written for ``path`` with ``recorded`` stamp still stands (kept, skipped on this run)."""
        if path in self._seen:
            return False  # written twice: a kill between the Parquet file's replacement and its parts' removal
        self._seen.add(path)
        keep = path not in self.listed or self.listed[path] == recorded
        if keep and path in self.listed:
            self.done.add(path)
        return keep

    def _refuse(self, what: str) -> ImgclfError:
        return ImgclfError(f"--out {self.out} exists and is not the predictions file of this bundle ({what})",
                           hint="give another --out, or delete the file to start over")

    def write(self, table: pa.Table) -> None:
        """Add the rows of one finished batch (the listing's columns and the prediction's)."""
        self._append(table)
        self._count(table)

    def _count(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        self.errors += table.num_rows - table.column("error").null_count

    @abstractmethod
    def _append(self, table: pa.Table) -> None:
        """Put ``table``'s rows into the file."""

    @abstractmethod
    def close(self) -> None:
        """Finish the file."""


class JsonlPredictions(PredictionsFile):
    def __init__(self, out: Path, labels: Sequence[str], listed: dict[str, Stamp]):
        super().__init__(out, labels, listed)
        kept, dropped = self._read()
        if dropped:
            write_text(out, "".join(kept))
        self.rows = len(kept)
        out.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(out, "a", encoding="utf-8")

    def _read(self) -> tuple[list[str], bool]:
        """(the complete lines that still stand, whether any was dropped); a last line cut short is truncated away."""
        if not self.out.exists():
            return [], False
        text = self.out.read_bytes()
        whole = text[: text.rfind(b"\n") + 1]
        if len(whole) < len(text):
            os.truncate(self.out, len(whole))  # a kill in the middle of a line
        lines = whole.split(b"\n")[:-1]  # bytes: a path may hold characters str.splitlines would split at
        kept: list[str] = []
        for n, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
                key = row["path"], (row.get("size"), row.get("mtime_ns"))
            except (ValueError, KeyError, TypeError):
                raise self._refuse(f"line {n} is not a JSON row with a path") from None
            if self._current(*key):
                kept.append(line.decode("utf-8") + "\n")
                self.errors += "error" in row
        return kept, len(kept) < len(lines)

    def _append(self, table: pa.Table) -> None:
        self._f.write("".join(json.dumps(record_row(r), ensure_ascii=False) + "\n" for r in table.to_pylist()))
        self._f.flush()  # whole batches reach the file as they finish: a kill loses at most the line being written

    def close(self) -> None:
        self._f.close()


class ParquetPredictions(PredictionsFile):
    def __init__(self, out: Path, labels: Sequence[str], listed: dict[str, Stamp]):
        super().__init__(out, labels, listed)
        self.parts = out.with_name(out.name + ".parts")
        self._kept = [self._current_rows(t) for t in self._tables()]  # the rows of an earlier job that stand
        for table in self._kept:
            self._count(table)
        self._next = 0
        self._new: list[Path] = []

    def _tables(self) -> Iterable[pa.Table]:
        files = ([self.out] if self.out.exists() else []) + sorted(self.parts.glob("part-*.parquet"))
        for f in files:
            try:
                table = pq.read_table(f)
            except (OSError, pa.ArrowException) as e:
                raise self._refuse(f"{f.name} does not read as Parquet: {e}") from None
            if not table.schema.equals(self.schema):
                raise self._refuse(f"{f.name} has other columns: {', '.join(table.schema.names)}")
            yield table

    def _current_rows(self, table: pa.Table) -> pa.Table:
        keys = zip(table.column("path").to_pylist(), table.column("size").to_pylist(), table.column("mtime_ns").to_pylist())
        return table.filter(pa.array([self._current(p, (s, m)) for p, s, m in keys], type=pa.bool_()))

    def _append(self, table: pa.Table) -> None:
        self.parts.mkdir(parents=True, exist_ok=True)
        while (self.parts / f"part-{self._next:06d}.parquet").exists():
            self._next += 1
        part = self.parts / f"part-{self._next:06d}.parquet"
        with atomic_path(part) as tmp:
            pq.write_table(table.select(self.schema.names).cast(self.schema), tmp)
        self._new.append(part)

    def close(self) -> None:
        """One file of the rows that stand and this job's parts, read back one part at a time."""
        with atomic_path(self.out) as tmp, pq.ParquetWriter(tmp, self.schema) as writer:
            for table in self._kept:
                writer.write_table(table)
            for part in self._new:
                writer.write_table(pq.read_table(part))
        shutil.rmtree(self.parts, ignore_errors=True)

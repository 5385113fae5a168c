"""Stream a run's results to disk as they arrive, so a kernel restart loses nothing.

Each finished chunk becomes one Arrow IPC file (written to a temporary name, then renamed:
a crash never leaves half a part) in the run's spill directory, next to ``manifest.json``.
``run(..., resume=True)`` reads the parts back: rows that finished without error are not
computed again, and their outputs are the values they had (pickled columns stay pickled:
``exchange.values``). The directory is ``$DSPEX_CACHE_DIR/runs/<run id>`` (the id fingerprints the
program, the LM, the options and every row's inputs), or the ``spill=`` path.

    >>> spill = Spill.open(None, run_id="3f2a...", rows=1000, resume=False, info={})
    >>> spill.write(table_with_row_column)
    >>> Spill.open(None, run_id="3f2a...", rows=1000, resume=True, info={}).load().num_rows
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from dspex_lab.errors import ConfigurationError
from dspex_lab.exchange import values as _values  # registers the pickled-column type

__all__ = ["ROW", "Spill", "spill_root"]

ROW = "__row__"
"""The column holding each result's row number in the input."""

_KEEP_RUNS = 20


def spill_root() -> Path | None:
    """``$DSPEX_CACHE_DIR/runs`` (None when ``DSPEX_CACHE_DIR=off``)."""
    from dspex_lab.cache import default_cache_path

    if os.environ.get("DSPEX_CACHE_DIR", "").lower() in ("off", "none", "0"):
        return None
    return default_cache_path().parent / "runs"


class Spill:
    """One run's spill directory. Create with ``Spill.open``."""

    def __init__(self, directory: Path, run_id: str) -> None:
        self.directory = directory
        self.run_id = run_id
        self._seq = len(self._parts())

    @classmethod
    def open(cls, where: Any, run_id: str, rows: int, resume: bool, info: dict[str, Any]
             ) -> Spill | None:
        """The spill for ``run_id`` under ``where`` (a directory path; None: the default
        location; False: no spill). Without ``resume`` earlier parts are discarded."""
        if where is False:
            return None
        if where is None:
            root = spill_root()
            if root is None:
                return None
            directory = root / run_id
        else:
            directory = Path(where).expanduser()
        manifest = directory / "manifest.json"
        if resume and manifest.exists():
            found = json.loads(manifest.read_text()).get("run_id")
            if found != run_id:
                raise ConfigurationError(
                    f"The spill at {str(directory)!r} belongs to another run (different "
                    "program, LM, options or input rows). Resume with the same arguments, "
                    "pass another spill= path, or resume=False to start over there.")
        elif directory.exists():
            for part in directory.glob("part-*.arrow"):
                part.unlink()
        directory.mkdir(parents=True, exist_ok=True)
        body = {"run_id": run_id, "rows": rows, "created": time.time(), **info}
        _atomic_write(manifest, json.dumps(body, default=str).encode())
        if where is None:
            _prune(directory.parent, keep=directory)
        return cls(directory, run_id)

    def _parts(self) -> list[Path]:
        return sorted(self.directory.glob("part-*.arrow"))

    def write(self, table: pa.Table) -> None:
        """Add one part (a results table with a ``__row__`` column); pickled values are
        pickled again in the kernel, by reference (``exchange.values.portable``)."""
        table = _values.portable(table)
        self._seq += 1
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        _atomic_write(self.directory / f"part-{self._seq:06d}.arrow",
                      sink.getvalue().to_pybytes())

    def load(self) -> pa.Table | None:
        """Every spilled result (the last one wins for a row), or None when there is none."""
        tables = []
        for part in self._parts():
            try:
                with pa.memory_map(str(part)) as source:
                    tables.append(pa.ipc.open_file(source).read_all())
            except (pa.ArrowInvalid, OSError):  # unreadable part: recompute those rows
                continue
        if not tables:
            return None
        table = pa.concat_tables(_values.unify(tables), promote_options="permissive")
        rows = table.column(ROW).to_numpy()
        import numpy as np

        _, last = np.unique(rows[::-1], return_index=True)
        keep = np.sort(len(rows) - 1 - last)
        return table.take(pa.array(keep))

    def finish(self, status: str, usage: dict[str, Any]) -> None:
        """Record how the run ended in the manifest."""
        manifest = self.directory / "manifest.json"
        try:
            body = json.loads(manifest.read_text())
        except (OSError, ValueError):
            body = {"run_id": self.run_id}
        body.update(status=status, finished=time.time(), usage=usage)
        _atomic_write(manifest, json.dumps(body, default=str).encode())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _prune(root: Path, keep: Path) -> None:
    """Keep the newest spill directories under ``root``."""
    try:
        dirs = sorted((d for d in root.iterdir() if d.is_dir() and d != keep),
                      key=lambda d: d.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in dirs[_KEEP_RUNS - 1:]:
        shutil.rmtree(old, ignore_errors=True)

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

Durability: a part is complete or absent (temporary name, fsync, rename), so a kernel killed
mid-run loses only the chunks in flight. A part or manifest that cannot be read (torn,
truncated, corrupt) is reported in one warning naming the file, moved aside
(``<name>.corrupt``) and its rows are computed again. A directory that cannot be written
(read-only, full disk) turns the spill off for the run, said once; the run still returns its
frame.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import warnings
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
        self._seq = max((_seq_of(p) for p in self._parts()), default=0)
        self.error: str | None = None  # why writing stopped (None: spilling)

    @classmethod
    def open(cls, where: Any, run_id: str, rows: int, resume: bool, info: dict[str, Any]
             ) -> Spill | None:
        """The spill for ``run_id`` under ``where`` (a directory path; None: the default
        location; False: no spill). Without ``resume`` earlier parts are discarded. None
        (with a warning) when the directory cannot be written."""
        if where is False:
            return None
        if where is None:
            root = spill_root()
            if root is None:
                return None
            directory = root / run_id
        else:
            directory = Path(where).expanduser()
        try:
            return cls._open(directory, where, run_id, rows, resume, info)
        except OSError as exc:
            warnings.warn(f"The run's spill directory {str(directory)!r} cannot be written "
                          f"({type(exc).__name__}: {exc}); spilling is off for this run (an "
                          "interrupted run cannot resume). Free space, fix the permissions or "
                          "pass spill= a writable directory.", RuntimeWarning, stacklevel=4)
            return None

    @classmethod
    def _open(cls, directory: Path, where: Any, run_id: str, rows: int, resume: bool,
              info: dict[str, Any]) -> Spill:
        manifest = directory / "manifest.json"
        for stale in directory.glob(".*.tmp") if directory.exists() else ():
            stale.unlink(missing_ok=True)  # a write cut short by a crash
        found = _read_manifest(manifest) if resume and manifest.exists() else None
        if found is _TORN:  # its parts are this run's only in the default (run id) directory
            found = {"run_id": run_id} if directory.name == run_id else None
        if found is not None:
            if found.get("run_id") != run_id:
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
        if self.error is not None:
            return
        table = _values.portable(table)
        self._seq += 1
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        try:
            _atomic_write(self.directory / f"part-{self._seq:06d}.arrow",
                          sink.getvalue().to_pybytes())
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"Writing the run's spill in {str(self.directory)!r} failed "
                          f"({self.error}); spilling is off for the rest of this run (the "
                          "results are still returned). Free space or fix the permissions.",
                          RuntimeWarning, stacklevel=4)

    def load(self) -> pa.Table | None:
        """Every spilled result (the last one wins for a row), or None when there is none."""
        tables = []
        for part in self._parts():
            try:
                with pa.memory_map(str(part)) as source:
                    table = pa.ipc.open_file(source).read_all()
                if ROW not in table.column_names:
                    raise pa.ArrowInvalid(f"no {ROW!r} column")
                tables.append(table)
            except (pa.ArrowInvalid, OSError) as exc:  # unreadable part: recompute those rows
                _set_aside(part, exc, "its rows are computed again")
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
        with contextlib.suppress(OSError):  # already reported by write()
            _atomic_write(manifest, json.dumps(body, default=str).encode())


_TORN: Any = object()


def _read_manifest(path: Path) -> Any:
    """The manifest's content, or ``_TORN`` (reported, moved aside) when unreadable."""
    try:
        body = json.loads(path.read_text())
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        return body
    except (OSError, ValueError) as exc:
        _set_aside(path, exc, "the run starts a new one")
        return _TORN


def _set_aside(path: Path, exc: BaseException, then: str) -> None:
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except OSError:
        aside = path
    warnings.warn(f"The spill file {str(path)!r} is unreadable ({type(exc).__name__}: {exc}); "
                  f"it was moved to {str(aside)!r} and {then}.", RuntimeWarning, stacklevel=5)


def _seq_of(part: Path) -> int:
    try:
        return int(part.stem.split("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` under a temporary name, flush it to disk, then rename: all or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _prune(root: Path, keep: Path) -> None:
    """Keep the newest spill directories under ``root``."""
    try:
        dirs = sorted((d for d in root.iterdir() if d.is_dir() and d != keep),
                      key=lambda d: d.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in dirs[_KEEP_RUNS - 1:]:
        shutil.rmtree(old, ignore_errors=True)

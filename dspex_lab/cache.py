"""The result cache: program + inputs + LM config -> outputs, in memory and on disk.

A cache hit is answered natively in the kernel (no IPC, no LM call). The disk layer (SQLite,
one file) makes a re-run after a kernel restart recompute only what is missing.

Values are kept pickled (``exchange.objects.dumps``), in memory and on disk, so a hit gives
the same Python values and types as the call that stored them -- pydantic models, enums,
dicts, ``dspy.History`` -- and a fresh copy every time (changing a returned list never
changes the cache). A value that cannot be pickled is not cached. The file is written only
by dspex_lab; entries written as JSON by older versions are still read.

    >>> cache = ResultCache(path=None)            # memory only
    >>> key = cache_key("prog", {"q": "hi"}, "lm")
    >>> cache.put(key, {"answer": "hello"}); cache.get(key)
    {'answer': 'hello'}
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from dspex_lab.exchange.objects import dumps, loads

_MISSING = object()


def default_cache_path() -> Path:
    """``$DSPEX_CACHE_DIR/results.sqlite`` (default ``~/.cache/dspex_lab``)."""
    root = os.environ.get("DSPEX_CACHE_DIR") or Path.home() / ".cache" / "dspex_lab"
    return Path(root) / "results.sqlite"


def cache_key(program_key: str, inputs: dict[str, Any], lm_key: str, **extra: Any) -> str:
    """A stable key for one call: same program, inputs, LM and options -> same key."""
    return cache_digest(program_key, inputs, lm_key, **extra).hex()


def cache_digest(program_key: str, inputs: dict[str, Any], lm_key: str, **extra: Any) -> bytes:
    """``cache_key`` as its 32 raw bytes (what batch runs keep per row)."""
    body = json.dumps([program_key, inputs, lm_key, extra], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).digest()


class ResultCache:
    """A bounded in-memory LRU in front of an optional SQLite file. Thread-safe."""

    def __init__(self, path: str | Path | None = None, max_items: int = 100_000) -> None:
        self.max_items = max_items
        self._mem: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._path = Path(path) if path else None
        self._db: sqlite3.Connection | None = None
        self.hits = self.misses = 0

    def _conn(self) -> sqlite3.Connection | None:
        if self._path is None:
            return None
        if self._db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self._path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT)")
        return self._db

    def get(self, key: str, default: Any = None, *, remember: bool = True) -> Any:
        """The cached value for ``key``, or ``default``; ``remember=False`` does not copy a
        value found on disk into the memory layer (bulk reads by batch runs)."""
        with self._lock:
            blob = self._mem.get(key, _MISSING)
            if blob is not _MISSING:
                self._mem.move_to_end(key)
            else:
                db = self._conn()
                row = None
                if db is not None:
                    row = db.execute("SELECT value FROM results WHERE key=?",
                                     (key,)).fetchone()
                if row is None:
                    self.misses += 1
                    return default
                blob = row[0]
                if remember:
                    self._remember(key, blob)
            try:
                value = _decode(blob)
            except Exception:  # e.g. a class that no longer exists: as if not cached
                self.misses += 1
                return default
            self.hits += 1
            return value

    def get_many(self, keys: list[str], *, remember: bool = True) -> dict[str, Any]:
        """The cached values of those keys that are present."""
        found = {}
        for key in keys:
            value = self.get(key, _MISSING, remember=remember)
            if value is not _MISSING:
                found[key] = value
        return found

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (anything picklable; anything else is not cached)."""
        self.put_many({key: value})

    def put_many(self, items: dict[str, Any], *, remember: bool = True) -> None:
        """Store many values in one transaction. ``remember=False`` writes them to disk only
        (a batch run's rows would crowd the memory layer); without a disk it is ignored."""
        blobs = {}
        for key, value in items.items():
            try:
                blobs[key] = dumps(value)
            except TypeError:  # cannot be pickled: not cached (the call is made again)
                continue
        with self._lock:
            db = self._conn()
            if remember or db is None:
                for key, blob in blobs.items():
                    self._remember(key, blob)
            if db is not None and blobs:
                db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)",
                               list(blobs.items()))
                db.commit()

    def _remember(self, key: str, blob: bytes) -> None:
        self._mem[key] = blob
        self._mem.move_to_end(key)
        while len(self._mem) > self.max_items:
            self._mem.popitem(last=False)

    def clear(self) -> None:
        """Forget everything, on disk too."""
        with self._lock:
            self._mem.clear()
            db = self._conn()
            if db is not None:
                db.execute("DELETE FROM results")
                db.commit()

    def __len__(self) -> int:
        with self._lock:
            db = self._conn()
            if db is not None:
                return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            return len(self._mem)

    def stats(self) -> dict[str, Any]:
        """``entries`` (on disk, else in memory), ``in_memory``, ``path`` (None: memory only),
        ``size_bytes`` (the file and its journal), and this process's ``hits``, ``misses``
        and ``hit_rate`` (None before the first lookup), for ``%dspex_cache``."""
        entries = len(self)
        with self._lock:
            files = [] if self._path is None else [
                f for f in (self._path, self._path.with_name(self._path.name + "-wal"))
                if f.exists()]
            looked = self.hits + self.misses
            return {"entries": entries, "in_memory": len(self._mem), "path": self._path,
                    "size_bytes": sum(f.stat().st_size for f in files), "hits": self.hits,
                    "misses": self.misses, "hit_rate": self.hits / looked if looked else None}


def _decode(blob: Any) -> Any:
    """A stored value: a pickle, or JSON text written by an older version."""
    if isinstance(blob, str):
        return json.loads(blob)
    return loads(blob)


_CACHE: ResultCache | None = None
_CACHE_LOCK = threading.Lock()


def get_cache() -> ResultCache:
    """The process-wide result cache (disk-backed unless ``DSPEX_CACHE_DIR=off``)."""
    global _CACHE
    with _CACHE_LOCK:
        if _CACHE is None:
            off = os.environ.get("DSPEX_CACHE_DIR", "").lower() in ("off", "none", "0")
            _CACHE = ResultCache(None if off else default_cache_path())
        return _CACHE


def set_cache(cache: ResultCache | None) -> None:
    """Replace the process-wide cache (None: a fresh default on next use)."""
    global _CACHE
    with _CACHE_LOCK:
        _CACHE = cache

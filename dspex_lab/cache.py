"""The result cache: program + inputs + LM config -> outputs, in memory and on disk.

A cache hit is answered natively in the kernel (no IPC, no LM call). The disk layer (SQLite,
one file) makes a re-run after a kernel restart recompute only what is missing.

Values are kept pickled (``exchange.objects.dumps``), in memory and on disk, so a hit gives
the same Python values and types as the call that stored them -- pydantic models, enums,
dicts, ``dspy.History`` -- and a fresh copy every time (changing a returned list never
changes the cache). A value that cannot be pickled is not cached. The file is written only
by dspex_lab; entries written as JSON by older versions are still read.

Durability: the file is SQLite in WAL mode with a 30 s busy timeout, so several kernels can
share one cache directory. A corrupt or truncated file is moved aside (``<name>.corrupt-<time>``)
with one warning naming it, and a new one is started; a file that cannot be written (read-only
or full disk) turns the disk layer off for this process, said once, and runs go on with the
memory layer. A cache problem never fails a call or a run.

    >>> cache = ResultCache(path=None)            # memory only
    >>> key = cache_key("prog", {"q": "hi"}, "lm")
    >>> cache.put(key, {"answer": "hello"}); cache.get(key)
    {'answer': 'hello'}

Scope: one cache per user (``~/.cache/dspex_lab``, or ``$DSPEX_CACHE_DIR``; ``off`` for
none), shared by every notebook and kernel. That is what makes a re-run after a kernel restart,
or the same question in another notebook, free. It never answers silently: a cached single
call says so and from when (``native (cached from an earlier session, 2 h ago)``; see
``stamped`` and ``origin``), a run's summary counts its cached rows, and ``%dspex_cache`` shows
where the cache is, how big, its hit rate, and clears it. A scope per notebook was rejected:
the kernel does not reliably know its notebook, and the same answer would be paid for twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

from dspex_lab.exchange.objects import dumps, loads

_MISSING = object()
log = logging.getLogger("dspex_lab.cache")


def default_cache_path() -> Path:
    """``$DSPEX_CACHE_DIR/results.sqlite`` (default ``~/.cache/dspex_lab``)."""
    root = os.environ.get("DSPEX_CACHE_DIR") or Path.home() / ".cache" / "dspex_lab"
    return Path(root) / "results.sqlite"


def cache_key(program_key: str, inputs: dict[str, Any], lm_key: str, **extra: Any) -> str:
    """A stable key for one call: same program, inputs, LM and options -> same key."""
    return cache_digest(program_key, inputs, lm_key, **extra).hex()


def cache_digest(program_key: str, inputs: dict[str, Any], lm_key: str, **extra: Any) -> bytes:
    """``cache_key`` as its 32 raw bytes (what batch runs keep per row).

    Plain values (str, int, float, bool, None, and lists / str-keyed dicts of them) are
    hashed as JSON; any other value (a ``dspy.History``/``dspy.Image``, a pydantic model, a
    numpy array, a tuple, a dict with non-str keys, ...) by ``identity.fingerprint``, which
    hashes its content, so equal values share a key and different ones never do.
    """
    if all(type(v) in _SCALARS or _is_plain(v) for v in inputs.values()) and all(
            type(v) in _SCALARS or _is_plain(v) for v in extra.values()):
        body = json.dumps([program_key, inputs, lm_key, extra], sort_keys=True)
    else:
        from dspex_lab.identity import fingerprint  # identity imports the signature package

        exact: dict[str, dict[str, str]] = {"inputs": {}, "extra": {}}
        parts = []
        for name, values in (("inputs", inputs), ("extra", extra)):
            plain = {}
            for k, v in values.items():
                if type(v) in _SCALARS or _is_plain(v):
                    plain[k] = v
                else:
                    exact[name][k] = fingerprint(v)
            parts.append(plain)
        body = json.dumps([program_key, parts[0], lm_key, parts[1], exact], sort_keys=True)
    return hashlib.sha256(body.encode()).digest()


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_plain(value: Any, depth: int = 0) -> bool:
    """Whether JSON holds ``value`` exactly (no str(), no tuple -> list, no key coercion)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if depth > 64:
        return False
    if kind is list:
        return all(_is_plain(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str and _is_plain(v, depth + 1) for k, v in value.items())
    return False


class ResultCache:
    """A bounded in-memory LRU in front of an optional SQLite file. Thread-safe."""

    def __init__(self, path: str | Path | None = None, max_items: int = 100_000) -> None:
        self.max_items = max_items
        self._mem: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._path = Path(path) if path else None
        self._db: sqlite3.Connection | None = None
        self.hits = self.misses = 0
        self.disk_error: str | None = None  # why the disk layer is off (None: it is on)

    def _conn(self) -> sqlite3.Connection | None:
        if self._path is None or self.disk_error is not None:
            return None
        if self._db is None:
            try:
                self._db = _open(self._path)
            except (sqlite3.Error, OSError) as exc:
                if _busy(exc):  # another process is creating the file: skip this operation
                    log.warning("dspex_lab result cache %s is busy (%s); this lookup or write "
                                "was skipped.", self._path, exc)
                    return None
                if not _corrupt(exc):
                    self._disk_off(exc)
                    return None
                self._set_aside(exc)
                try:
                    self._db = _open(self._path)
                except (sqlite3.Error, OSError) as again:
                    self._disk_off(again)
        return self._db

    def _failed(self, exc: sqlite3.Error) -> None:
        """A disk operation failed: set a corrupt file aside (a new one is opened next time);
        turn the disk layer off when the file cannot be written; a busy database only skips
        this operation."""
        if _busy(exc):
            log.warning("dspex_lab result cache %s is busy (%s); this lookup or write was "
                        "skipped.", self._path, exc)
            return
        if self._db is not None:
            self._db.close()
            self._db = None
        if _corrupt(exc):
            self._set_aside(exc)
        else:
            self._disk_off(exc)

    def _set_aside(self, exc: BaseException) -> None:
        assert self._path is not None
        aside = self._path.with_name(f"{self._path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            part = self._path.with_name(self._path.name + suffix)
            try:
                if part.exists():
                    os.replace(part, aside.with_name(aside.name + suffix))
            except OSError:
                pass
        warnings.warn(f"The dspex_lab result cache {str(self._path)!r} is corrupt ({exc}); it "
                      f"was moved to {str(aside)!r} and a new cache started.", RuntimeWarning,
                      stacklevel=4)

    def _disk_off(self, exc: BaseException) -> None:
        self.disk_error = f"{type(exc).__name__}: {exc}"
        warnings.warn(f"The dspex_lab result cache {str(self._path)!r} cannot be used "
                      f"({self.disk_error}); caching on disk is off for this process (memory "
                      "only). Free space or fix the permissions, or set DSPEX_CACHE_DIR to a "
                      "writable directory.", RuntimeWarning, stacklevel=4)

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
                    try:
                        row = db.execute("SELECT value FROM results WHERE key=?",
                                         (key,)).fetchone()
                    except sqlite3.Error as exc:
                        self._failed(exc)
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
                try:
                    with db:  # one transaction, rolled back on error
                        db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)",
                                       list(blobs.items()))
                except sqlite3.Error as exc:
                    self._failed(exc)
                    if not remember:  # not on disk: keep them in memory at least
                        for key, blob in blobs.items():
                            self._remember(key, blob)

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
                try:
                    with db:
                        db.execute("DELETE FROM results")
                except sqlite3.Error as exc:
                    self._failed(exc)

    def __len__(self) -> int:
        with self._lock:
            db = self._conn()
            if db is not None:
                try:
                    return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                except sqlite3.Error as exc:
                    self._failed(exc)
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


def _open(path: Path) -> sqlite3.Connection:
    """Open (or create) the cache file and check that SQLite can read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, timeout=30)
    try:
        db.execute("PRAGMA busy_timeout=30000")
        for _ in range(100):  # switching to WAL takes an exclusive lock that busy_timeout does
            try:              # not wait for: two processes creating the file at once race
                if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    db.execute("PRAGMA journal_mode=WAL")  # (once per file: WAL persists)
                break
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise
                time.sleep(0.02)
        db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("SELECT COUNT(*) FROM (SELECT key FROM results LIMIT 1)").fetchone()
    except BaseException:
        db.close()
        raise
    return db


def _corrupt(exc: BaseException) -> bool:
    """Whether ``exc`` says the file is not (or no longer) a readable SQLite database."""
    name = getattr(exc, "sqlite_errorname", "")
    return name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or any(
        text in str(exc) for text in ("malformed", "not a database"))


def _busy(exc: BaseException) -> bool:
    return getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


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


# -- where a cached answer came from --------------------------------------------------------------

SESSION = uuid.uuid4().hex[:12]
"""This process's id, stored with each single-call answer (``stamped``)."""


def stamped(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with when and in which session (process) it was stored."""
    return {**value, "cached_at": time.time(), "cached_session": SESSION}


def origin(cached_at: float | None, session: str | None, now: float | None = None) -> str:
    """Where a cached answer came from, in words.

    >>> origin(100.0, SESSION, now=130.0)
    'from this session, 30 s ago'
    >>> origin(0.0, "another", now=7200.0)
    'from an earlier session, 2 h ago'
    >>> origin(None, None)
    'from the result cache (when: not recorded)'
    """
    if cached_at is None:
        return "from the result cache (when: not recorded)"
    age = max(0.0, (time.time() if now is None else now) - float(cached_at))
    when = "just now" if age < 1 else next(f"{int(age // size)} {unit} ago" for size, unit in (
        (86400, "d"), (3600, "h"), (60, "min"), (1, "s")) if age >= size)
    who = "this session" if session == SESSION else "an earlier session"
    return f"from {who}, {when}"

"""Record LM traffic to a file, and replay it: a notebook re-executes offline, deterministically.

    >>> with dspex_lab.record("answers.lmlog"):          # calls the LM, writes every response
    ...     df = dspex_lab.run("question -> answer", questions)
    >>> with dspex_lab.replay("answers.lmlog"):          # no LM needed: same answers, same usage
    ...     df2 = dspex_lab.run("question -> answer", questions)

``record(path)`` and ``replay(path)`` also work as on/off switches: they take effect at once
and ``.stop()`` ends them.

The hook sits at the LM level, in the process that calls the LM: DSPy's LM execution step
(``dspy.clients.execution.execute``/``aexecute``, patched while a mode is active; nothing
changes otherwise) and the batch fast transport. ``run()`` sends the mode and the (absolute)
path to its workers with every chunk. Requests are keyed by model, messages and generation
settings; the API key, base URL (the embedded server's port changes every session) and
timeouts are left out. The file is JSON lines; workers append under a file lock.
While recording, the result cache is not read (a cached row would make no LM call to record).

Calls made with an explicit ``dspy.lm15.Request`` pass through unrecorded.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dspex_lab.errors import ConfigurationError, LMError

__all__ = [
    "Recording",
    "ReplayConfig",
    "activated",
    "current",
    "record",
    "replay",
    "request_key",
]

_NOT_KEYED = frozenset({"api_key", "api_base", "base_url", "headers", "extra_headers", "timeout",
                        "api_version", "azure_ad_token_provider", "organization", "project",
                        "extra_query", "custom_llm_provider", "num_retries", "cache"})


@dataclass(frozen=True)
class ReplayConfig:
    """The active mode: ``record`` (call the LM, append responses) or ``replay`` (answer from
    the file; a request it lacks fails with ``LMError`` when ``strict``, else goes live)."""

    mode: str
    path: str
    strict: bool = True


_LOCK = threading.Lock()
_ACTIVE: ReplayConfig | None = None


def current() -> ReplayConfig | None:
    """The mode in effect in this process, or None."""
    return _ACTIVE


class Recording:
    """The handle ``record``/``replay`` return: a context manager, or call ``stop()``."""

    def __init__(self, config: ReplayConfig) -> None:
        self.config = config
        self._previous = _swap(config)

    def stop(self) -> None:
        """End this mode (restoring whatever was active before it)."""
        global _ACTIVE
        with _LOCK:
            if _ACTIVE is self.config:
                _ACTIVE = self._previous

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<dspex_lab {self.config.mode} {self.config.path!r}>"


def record(path: str | os.PathLike[str]) -> Recording:
    """Record every LM response to ``path`` (JSON lines, appended) from now on.

    >>> with record("run.lmlog"):
    ...     dspex_lab.predict("question -> answer", question="2 + 2?")
    """
    target = Path(path).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch()
    return Recording(ReplayConfig("record", str(target)))


def replay(path: str | os.PathLike[str], strict: bool = True) -> Recording:
    """Answer LM calls from the responses recorded in ``path``; no LM is contacted.

    A request missing from the file raises ``LMError`` (``strict``) or calls the LM.

    >>> with replay("run.lmlog"):
    ...     dspex_lab.run("question -> answer", df)
    """
    target = Path(path).expanduser().resolve()
    if not target.is_file():
        raise ConfigurationError(
            f"No recording at {str(target)!r}; make one first with dspex_lab.record(path).")
    return Recording(ReplayConfig("replay", str(target), strict))


def _swap(config: ReplayConfig | None) -> ReplayConfig | None:
    global _ACTIVE
    if config is not None and "dspy" in sys.modules:  # else installed where DSPy runs
        install()
    with _LOCK:
        previous, _ACTIVE = _ACTIVE, config
    return previous


@contextlib.contextmanager
def activated(config: ReplayConfig | None) -> Iterator[None]:
    """Make ``config`` the mode for the duration (a worker running one chunk)."""
    if config is not None:
        install()
    if config is None or config == _ACTIVE:
        yield
        return
    previous = _swap(config)
    try:
        yield
    finally:
        _swap(previous)


# -- keys and the store -------------------------------------------------------------------------

def request_key(model: str, messages: Any, settings: Mapping[str, Any]) -> str:
    """The key of one request: model, messages and the settings that change the answer."""
    kept = {k: v for k, v in settings.items() if k not in _NOT_KEYED and v is not None}
    body = json.dumps([model, messages, kept], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


class _Store:
    """One recording file: an in-memory index, reloaded when the file changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._index: dict[str, dict[str, Any]] = {}
        self._stamp: tuple[float, int] | None = None
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            self._reload()
            return self._index.get(key)

    def append(self, key: str, entry: dict[str, Any]) -> None:
        line = (json.dumps({"key": key, **entry}, default=str) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, line)
            finally:
                os.close(fd)
            self._index[key] = entry

    def _reload(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._stamp:
            return
        index: dict[str, dict[str, Any]] = {}
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        item = json.loads(line)
                    except json.JSONDecodeError:  # a torn last line from a killed writer
                        continue
                    index[item.pop("key")] = item
        self._index, self._stamp = index, stamp


_STORES: dict[str, _Store] = {}


def store(config: ReplayConfig) -> _Store:
    """The store for ``config.path`` (one per process and path)."""
    with _LOCK:
        found = _STORES.get(config.path)
        if found is None:
            found = _STORES[config.path] = _Store(config.path)
        return found


def lookup(config: ReplayConfig, key: str, model: str, messages: Any) -> dict[str, Any] | None:
    """The recorded entry for ``key`` in replay mode; None when live calls are allowed."""
    entry = store(config).get(key)
    if entry is None and config.strict:
        raise LMError(
            f"No recorded response for this {model} request in {config.path!r} (last message: "
            f"{_preview(messages)!r}). The prompt, the model or its settings changed since the "
            "recording; record again with dspex_lab.record(path), or replay with strict=False "
            "to call the LM for what is missing.", retryable=False)
    return entry


def _preview(messages: Any) -> str:
    try:
        text = str(messages[-1].get("content", ""))
    except Exception:
        text = str(messages)
    return text[:80]


# -- the DSPy hook -------------------------------------------------------------------------------

_ORIGINAL: dict[str, Any] = {}


def install() -> None:
    """Patch DSPy's LM execution step once per process (a no-op while no mode is active)."""
    if _ORIGINAL:
        return
    try:
        from dspy.clients import execution
    except ImportError:  # pragma: no cover - DSPy is a dependency
        return
    with _LOCK:
        if _ORIGINAL:
            return
        _ORIGINAL["execute"], _ORIGINAL["aexecute"] = execution.execute, execution.aexecute
        execution.execute, execution.aexecute = _execute, _aexecute


def _call_key(lm: Any, call: Any) -> str | None:
    if getattr(call, "request", None) is not None:
        return None
    legacy = dict(call.legacy)
    return request_key(legacy.pop("model", lm.model), legacy.pop("messages", None), legacy)


def _execute(lm: Any, call: Any) -> Any:
    config, key = _ACTIVE, None
    if config is not None:
        key = _call_key(lm, call)
    if key is None:
        return _ORIGINAL["execute"](lm, call)
    if config.mode == "replay":
        entry = lookup(config, key, lm.model, call.legacy.get("messages"))
        if entry is not None:
            return _result(entry)
    result = _ORIGINAL["execute"](lm, call)
    if config.mode == "record":
        store(config).append(key, _entry(result))
    return result


async def _aexecute(lm: Any, call: Any) -> Any:
    config, key = _ACTIVE, None
    if config is not None:
        key = _call_key(lm, call)
    if key is None:
        return await _ORIGINAL["aexecute"](lm, call)
    if config.mode == "replay":
        entry = lookup(config, key, lm.model, call.legacy.get("messages"))
        if entry is not None:
            return _result(entry)
    result = await _ORIGINAL["aexecute"](lm, call)
    if config.mode == "record":
        store(config).append(key, _entry(result))
    return result


def _entry(result: Any) -> dict[str, Any]:
    from dspy.clients.legacy_outputs import plain

    usage = result.usage or {}
    return {"model": result.response_model, "outputs": plain(result.outputs),
            "usage": {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
                      "completion_tokens": int(usage.get("completion_tokens") or 0)}}


def _result(entry: Mapping[str, Any]) -> Any:
    from dspy.clients.call_result import CallResult, attributes

    usage = dict(entry.get("usage") or {})
    usage["total_tokens"] = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
    return CallResult(outputs=attributes(list(entry["outputs"])), usage=usage,
                      response_model=entry.get("model"))


def text_entry(model: str, text: str, prompt_tokens: int, completion_tokens: int
               ) -> dict[str, Any]:
    """An entry for a plain text answer (what the batch fast transport records)."""
    return {"model": model, "outputs": [text],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}


def entry_text(entry: Mapping[str, Any]) -> str:
    """The answer text of an entry (the first output)."""
    out = entry["outputs"][0]
    return out.get("text") or "" if isinstance(out, Mapping) else str(out)

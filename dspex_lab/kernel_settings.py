"""The kernel's ``dspy.settings`` that travel with every call to the workers.

A worker is another process: what ``dspy.configure(...)`` or ``dspy.context(...)`` set in the
kernel is not there unless it is carried. ``capture()`` reads the kernel's settings when a
call or a run starts (``predict``, ``chain_of_thought``, ``react``, ``run``) and the worker
applies them around the program (``KernelSettings.context()``):

* ``adapter``: the ``adapter=`` argument (``"chat"``, ``"json"``, ``"xml"`` or an adapter
  instance), else the kernel's ``dspy.settings.adapter``. Any adapter travels, notebook-defined
  subclasses too (cloudpickled); ``adapter_key`` names it in cache keys (a short name for a
  plain ChatAdapter/JSONAdapter/XMLAdapter, a fingerprint of its class and state otherwise;
  ``cache_tag`` adds the other carried settings).
* every other setting that differs from DSPy's default, as it is (``rm``,
  ``interpreter_factory``, ``allow_tool_async_sync_conversion``, ``num_threads``,
  ``max_errors``, ``warn_on_type_mismatch``, your own keys...). ``lm`` is the call's LM
  (``dspex_lab.lm.resolve`` already takes the kernel's ``dspy.settings.lm``).
* ``track_usage``: single calls always track usage in the worker; with ``track_usage=True``
  in the kernel the prediction's ``get_lm_usage()`` has it.

What cannot be carried raises ``ConfigurationError`` naming the setting instead of running
differently: ``callbacks`` (they run in the kernel and would see nothing of calls made in a
worker; dspex_lab's own telemetry callback is fine) and streaming (``send_stream``,
``stream_listeners``). Run such calls in the kernel with ``implementation="native"``, or
clear the setting for the call with ``with dspy.context(callbacks=[]): ...``.

    >>> dspy.configure(adapter=dspy.JSONAdapter())
    >>> capture().adapter_key
    'json'
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dspex_lab.errors import ConfigurationError
from dspex_lab.kinds import ADAPTERS

__all__ = ["ADAPTERS", "KernelSettings", "adapter_key", "capture", "make_adapter"]

_NOT_CARRIED = frozenset({"lm", "adapter", "trace", "branch_idx", "usage_tracker",
                          "caller_predict", "caller_modules", "track_usage", "callbacks",
                          "send_stream", "stream_listeners"})
"""Per-call internals of DSPy, or settings handled one by one below."""


@dataclass(frozen=True)
class KernelSettings:
    """The settings one call or run carries to the workers (picklable)."""

    adapter: Any = None          # an adapter instance, a short name, or None (DSPy's default)
    values: tuple[tuple[str, Any], ...] = ()
    track_usage: bool = False

    @property
    def adapter_key(self) -> str | None:
        """What names the adapter in cache keys (None: DSPy's default)."""
        return adapter_key(self.adapter)

    @property
    def cache_tag(self) -> str | None:
        """What these settings add to a cache key: the adapter's name, plus a fingerprint
        of the other carried settings when there are any (None: nothing at all)."""
        if not self.values:
            return self.adapter_key
        return f"{self.adapter_key}|{_fingerprint(dict(self.values))}"

    @contextlib.contextmanager
    def context(self, **more: Any) -> Iterator[None]:
        """``dspy.context`` with these settings (and ``more``, e.g. ``lm=``) applied."""
        import dspy

        settings = dict(self.values)
        adapter = make_adapter(self.adapter)
        if adapter is not None:
            settings["adapter"] = adapter
        settings.update(more)
        with dspy.context(**settings):
            yield


def capture(adapter: Any = None, *, check: bool = True) -> KernelSettings:
    """The kernel's dspy settings to carry, with ``adapter`` (a name or an instance) in
    place of ``dspy.settings.adapter`` when given. With ``check``, a setting that cannot run
    in a worker raises ``ConfigurationError`` (pass False for a call run in the kernel)."""
    import sys

    if "dspy" not in sys.modules and adapter is None:
        return KernelSettings()
    import dspy
    from dspy.dsp.utils.settings import DEFAULT_CONFIG

    current = dspy.settings.copy()
    if check:
        _refuse(current)
    if adapter is None:
        adapter = current.get("adapter")
    if adapter is not None:
        make_adapter(adapter)  # a bad name fails here, in the kernel
    values = tuple(sorted(
        (name, value) for name, value in current.items()
        if name not in _NOT_CARRIED and not _is_default(value, DEFAULT_CONFIG.get(name, _NONE))))
    return KernelSettings(adapter, values, bool(current.get("track_usage")))


_NONE = object()


def _is_default(value: Any, default: Any) -> bool:
    if default is _NONE:
        return False
    try:
        return bool(value == default) and type(value) is type(default)
    except Exception:  # an exotic value: carry it
        return False


def _refuse(current: Any) -> None:
    """Settings a worker cannot honour: say which, and what to do."""
    from dspex_lab.lm.callbacks import TelemetryCallback

    callbacks = [c for c in current.get("callbacks") or []
                 if not isinstance(c, TelemetryCallback)]
    if callbacks:
        names = ", ".join(type(c).__name__ for c in callbacks)
        raise ConfigurationError(
            f"dspy.settings.callbacks holds {names}: callbacks run in this kernel and would "
            "not see the LM calls dspex_lab makes in worker processes. Run the call in the "
            "kernel with implementation='native', or clear them for the call with "
            "`with dspy.context(callbacks=[]): ...`.")
    for name in ("send_stream", "stream_listeners"):
        if current.get(name):
            raise ConfigurationError(
                f"dspy.settings.{name} is set: streaming cannot cross to a worker process. "
                "Stream in the kernel (dspy.streamify with implementation='native'), or clear "
                f"it for the call with `with dspy.context({name}=None): ...`.")


def make_adapter(adapter: Any) -> Any:
    """A dspy adapter from a short name (``chat``, ``json``, ``xml``) or an adapter
    instance (returned as it is); None keeps DSPy's default."""
    if adapter is None or not isinstance(adapter, str):
        if adapter is not None and (isinstance(adapter, type)
                                    or not callable(getattr(adapter, "format", None))):
            raise ConfigurationError(
                f"adapter={adapter!r} is not a DSPy adapter; pass 'chat', 'json', 'xml' or an "
                "instance such as dspy.JSONAdapter().")
        return adapter
    import dspy

    try:
        return getattr(dspy, ADAPTERS[adapter])()
    except KeyError:
        raise ConfigurationError(
            f"Unknown adapter {adapter!r}; use one of: {', '.join(ADAPTERS)}, or pass an "
            "adapter instance such as dspy.JSONAdapter().") from None


def adapter_key(adapter: Any) -> str | None:
    """The cache-key name of an adapter: its short name for a plain ChatAdapter, JSONAdapter
    or XMLAdapter with default options, else its class name and a fingerprint of its class
    and state."""
    if adapter is None or isinstance(adapter, str):
        return adapter
    import dspy

    for name, cls_name in ADAPTERS.items():
        cls = getattr(dspy, cls_name)
        if type(adapter) is cls and vars(adapter) == vars(cls()):
            return name
    return f"{type(adapter).__qualname__}:{_fingerprint(adapter)}"


def _fingerprint(obj: Any) -> str:
    from dspex_lab.identity import fingerprint

    return fingerprint(obj)[:16]

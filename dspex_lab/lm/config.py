"""Which LM dspex_lab calls: one default, any number of named LMs, and an offline fallback.

    >>> import dspex_lab
    >>> dspex_lab.configure(lm="openai/gpt-4o-mini", temperature=0.0)     # any litellm model
    >>> dspex_lab.configure(lms={"fast": "gpt-4o-mini",                  # short alias
    ...                          "strong": {"model": "anthropic/claude-3-5-sonnet-latest",
    ...                                     "max_tokens": 2000}})
    >>> get_lm("fast").model
    'openai/gpt-4o-mini'
    >>> lm_spec()                      # picklable; what worker processes build the LM from
    LMSpec(model='openai/gpt-4o-mini', kwargs={'temperature': 0.0})

With nothing configured, ``get_lm()`` takes, in order: ``dspy.settings.lm`` if the user set it,
the ``DSPEX_LM`` environment variable (a model string or ``embedded``), a small model of the
first provider whose API key is in the environment, and finally the embedded offline server
(started once per process, in a thread, or in a child process with
``DSPEX_EMBEDDED_SERVER=process``). The last two say so once, on stderr.

The embedded LM's knobs (latency, jitter, injected faults; ``lm_server.options``) are set with
one call, at any time: ``configure(embedded={"latency_ms": 200, "jitter_ms": 50,
"error_rate": 0.1, "error_kinds": ["429", "500"]})`` (``%dspex_lm --latency 200`` in a
notebook); ``embedded_knobs()`` shows them.

API keys stay out of every repr (``LMSpec`` redacts them); they do travel inside a pickled
``LMSpec`` because the worker needs them.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dspex_lab.errors import ConfigurationError
from dspex_lab.lm.spec import EMBEDDED_MODEL, LMSpec, spec_from_lm
from dspex_lab.telemetry import redact

if TYPE_CHECKING:
    import dspy

    from dspex_lab.lm_server import LMServer

__all__ = ["EMBEDDED_KNOBS", "EMBEDDED_MODEL", "LMSpec", "configure", "configure_embedded",
           "embedded_knobs", "embedded_server", "get_lm", "lm_spec", "reset", "resolve",
           "resolve_model", "spec_from_lm"]

log = logging.getLogger("dspex_lab.lm")

EMBEDDED_KEY = "dspex-local"
_EMBEDDED_NAMES = ("embedded", "dspex-embedded", EMBEDDED_MODEL)
PROVIDER_DEFAULTS = (
    ("OPENAI_API_KEY", "openai/gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "anthropic/claude-3-5-haiku-latest"),
    ("GEMINI_API_KEY", "gemini/gemini-2.0-flash"),
    ("GOOGLE_API_KEY", "gemini/gemini-2.0-flash"),
    ("MISTRAL_API_KEY", "mistral/mistral-small-latest"),
    ("GROQ_API_KEY", "groq/llama-3.1-8b-instant"),
)
_ALIAS_PREFIXES = (
    ("gpt-", "openai"), ("chatgpt-", "openai"), ("o1", "openai"), ("o3", "openai"),
    ("o4", "openai"), ("text-embedding-", "openai"), ("claude-", "anthropic"),
    ("gemini-", "gemini"), ("mistral-", "mistral"), ("open-mistral", "mistral"),
    ("codestral", "mistral"), ("command-", "cohere"),
)


# -- state --------------------------------------------------------------------------------------

@dataclass
class _State:
    default: Any = None                      # LMSpec | dspy.LM | None (configured)
    auto: LMSpec | None = None               # the fallback chosen when nothing is configured
    named: dict[str, Any] = field(default_factory=dict)
    built: dict[str | None, Any] = field(default_factory=dict)
    server: LMServer | None = None
    server_pid: int = 0
    noticed: bool = False
    dspy_default: Any = None                 # the LM we handed to dspy.configure, if any
    embedded: dict[str, Any] = field(default_factory=dict)  # knobs set by configure(embedded=)


_LOCK = threading.RLock()
_STATE = _State()


def configure(lm: Any = None, *, lms: Mapping[str, Any] | None = None,
              embedded: Mapping[str, Any] | None = None, **lm_kwargs: Any) -> None:
    """Set the default LM and/or named LMs, and/or the embedded LM's knobs.

    ``lm`` is a litellm model string (``"openai/gpt-4o-mini"``, ``"ollama_chat/llama3"``), a
    short alias (``"gpt-4o-mini"``, ``"embedded"``), a dict with ``"model"``, an ``LMSpec`` or
    a ``dspy.LM``; ``lm_kwargs`` go to ``dspy.LM`` (api_key, api_base, temperature, max_tokens,
    cache, ...). Without ``lm``, ``lm_kwargs`` update the current default. ``lms`` maps names
    to the same kinds of values (None removes a name). The default also becomes DSPy's
    (``dspy.configure(lm=...)``) so plain DSPy code in the notebook uses it. ``embedded``:
    the embedded LM's knobs, see ``configure_embedded``.

    >>> configure(lm="gpt-4o-mini", temperature=0.2)
    >>> configure(lms={"fast": "openai/gpt-4o-mini", "local": "ollama_chat/llama3"})
    """
    with _LOCK:
        # One block per keyword group; new groups (backend=, pools=) get their own block.
        if embedded is not None:
            configure_embedded(embedded)
        if lm is not None or lm_kwargs:
            _configure_default(lm, lm_kwargs)
        if lms is not None:
            _configure_named(lms)


def _configure_default(lm: Any, lm_kwargs: dict[str, Any]) -> None:
    knobs = sorted(set(lm_kwargs) & set(EMBEDDED_KNOBS))
    if lm is None and knobs:
        example = ", ".join(f"{k!r}: {lm_kwargs[k]!r}" for k in knobs)
        raise ConfigurationError(
            f"{', '.join(knobs)} {'is a knob' if len(knobs) == 1 else 'are knobs'} of the "
            f"embedded LM, not an LM setting; use dspex_lab.configure(embedded={{{example}}}) "
            f"(or %dspex_lm --latency ... in a notebook). Its knobs are: "
            f"{', '.join(EMBEDDED_KNOBS)}.")
    if lm is None:
        current = _STATE.default
        if current is None:
            raise ConfigurationError(
                f"No default LM is configured, so there is nothing to apply {sorted(lm_kwargs)} "
                "to; pass the model too, e.g. configure(lm=\"openai/gpt-4o-mini\", "
                "temperature=0.2).")
        lm = current if isinstance(current, LMSpec) else spec_from_lm(current)
    _STATE.default = _entry_from(lm, lm_kwargs, name=None)
    _STATE.built.pop(None, None)
    _hand_to_dspy(_build(None, _STATE.default))


def _configure_named(lms: Mapping[str, Any]) -> None:
    if not isinstance(lms, Mapping):
        raise ConfigurationError(f"lms must be a dict of name -> LM, got {type(lms).__name__}; "
                                 "e.g. lms={\"fast\": \"openai/gpt-4o-mini\"}.")
    for name, value in lms.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"LM names must be non-empty strings, got {name!r}.")
        _STATE.built.pop(name, None)
        if value is None:
            _STATE.named.pop(name, None)
        else:
            _STATE.named[name] = _entry_from(value, {}, name=name)


def _entry_from(value: Any, kwargs: Mapping[str, Any], name: str | None) -> Any:
    """An ``LMSpec`` (or the user's own ``dspy.LM``) from anything ``configure`` accepts."""
    kwargs = dict(kwargs)
    if isinstance(value, LMSpec):
        return replace(value.with_kwargs(**kwargs), name=name or value.name)
    if isinstance(value, str):
        return LMSpec(resolve_model(value), kwargs, name=name)
    if isinstance(value, Mapping):
        data = dict(value)
        model = data.pop("model", None)
        if not isinstance(model, str):
            raise ConfigurationError(
                f"The LM settings {redact(dict(value))!r} have no 'model'; add one, e.g. "
                "{\"model\": \"openai/gpt-4o-mini\", \"temperature\": 0}.")
        return LMSpec(resolve_model(model), {**data, **kwargs}, name=name)
    if _is_dspy_lm(value):
        return value.copy(**kwargs) if kwargs else value
    raise ConfigurationError(
        f"Cannot use {type(value).__name__} {value!r} as an LM; pass a model string such as "
        "\"openai/gpt-4o-mini\", a dict with \"model\", an LMSpec or a dspy.LM.")


def _is_dspy_lm(value: Any) -> bool:
    if "dspy" not in sys.modules:
        return False
    import dspy

    return isinstance(value, dspy.BaseLM)


def resolve_model(name: str) -> str:
    """A full litellm model string from a model string or a short alias.

    >>> resolve_model("gpt-4o-mini"), resolve_model("embedded")
    ('openai/gpt-4o-mini', 'openai/dspex-embedded')
    """
    name = name.strip()
    if name in _EMBEDDED_NAMES:
        return EMBEDDED_MODEL
    if "/" in name:
        return name
    for prefix, provider in _ALIAS_PREFIXES:
        if name.startswith(prefix):
            return f"{provider}/{name}"
    raise ConfigurationError(
        f"Cannot tell which provider serves the model {name!r}; write it as "
        f"'provider/model', e.g. 'openai/{name}', 'anthropic/{name}' or 'ollama_chat/{name}'.")


# -- lookups ------------------------------------------------------------------------------------

def get_lm(name: str | None = None) -> dspy.LM:
    """The configured default LM, or the named one (built once, then reused).

    >>> get_lm().model          # nothing configured, no API key  # doctest: +SKIP
    dspex_lab: no LM configured and no provider API key found; using the embedded offline ...
    'openai/dspex-embedded'
    """
    with _LOCK:
        key, entry = _entry(name)
        return _build(key, entry)


def lm_spec(name: str | None = None) -> LMSpec:
    """The ``LMSpec`` that worker processes use to build the same LM as ``get_lm(name)``."""
    with _LOCK:
        _, entry = _entry(name)
        return _to_spec(entry)


def named_lms() -> dict[str, str]:
    """The configured named LMs: name -> model string.

    >>> dspex_lab.configure(lms={"fast": "openai/gpt-4o-mini"}); named_lms()  # doctest: +SKIP
    {'fast': 'openai/gpt-4o-mini'}
    """
    with _LOCK:
        return {name: _to_spec(entry).model for name, entry in sorted(_STATE.named.items())}


def resolve(lm: Any = None) -> LMSpec:
    """An ``LMSpec`` from None (the default), a configured name, a model string or alias, a
    dict, an ``LMSpec`` or a ``dspy.LM``."""
    with _LOCK:
        if lm is None or (isinstance(lm, str) and (lm in _STATE.named or lm in _EMBEDDED_NAMES)):
            _check_rebuildable(_entry(lm)[1])
            return lm_spec(lm)
        entry = _entry_from(lm, {}, name=None)
        _check_rebuildable(entry)
        return _to_spec(entry)


def _check_rebuildable(entry: Any) -> None:
    """Workers rebuild an LM from its model and settings as a plain ``dspy.LM``; refuse an
    LM of another class rather than silently calling a different one."""
    if isinstance(entry, LMSpec) or not _is_dspy_lm(entry):
        return
    import dspy

    if type(entry) is not dspy.LM:
        raise ConfigurationError(
            f"The LM is a {type(entry).__name__}, not a dspy.LM: dspex_lab's workers rebuild "
            "the LM from its model and settings as a plain dspy.LM, so its own code would "
            "not run there. Configure a dspy.LM (dspy.LM('provider/model', ...)), or call "
            "the program with plain DSPy in the kernel.")


def _entry(name: str | None) -> tuple[str | None, Any]:
    if name is None or name == "default":
        return None, _default_entry()
    if name in _STATE.named:
        return name, _STATE.named[name]
    if name in _EMBEDDED_NAMES:
        return "embedded", LMSpec(EMBEDDED_MODEL, name="embedded")
    known = ", ".join(repr(n) for n in sorted(_STATE.named)) or "none yet"
    raise ConfigurationError(
        f"No LM is named {name!r}; configured names: {known}. Add it with "
        f"dspex_lab.configure(lms={{{name!r}: \"openai/gpt-4o-mini\"}}).")


def _default_entry() -> Any:
    if _STATE.default is not None:
        return _STATE.default
    user_lm = _dspy_settings_lm()
    if user_lm is not None:
        return user_lm
    if _STATE.auto is None:
        _STATE.auto = _fallback_spec()
    return _STATE.auto


def _dspy_settings_lm() -> Any:
    """``dspy.settings.lm`` when the user set it (not when we did)."""
    if "dspy" not in sys.modules:
        return None
    import dspy

    lm = dspy.settings.lm
    return None if lm is None or lm is _STATE.dspy_default else lm


def _fallback_spec() -> LMSpec:
    env = os.environ.get("DSPEX_LM", "").strip()
    if env:
        return LMSpec(resolve_model(env), name="default")
    for variable, model in PROVIDER_DEFAULTS:
        if os.environ.get(variable):
            _notice(f"dspex_lab: no LM configured; using {model} because {variable} is set. "
                    "Choose another with dspex_lab.configure(lm=\"provider/model\").")
            return LMSpec(model, name="default")
    url = embedded_server().url
    _notice(f"dspex_lab: no LM configured and no provider API key found; using the embedded "
            f"offline LM at {url} (deterministic fake answers). Switch with "
            "dspex_lab.configure(lm=\"openai/gpt-4o-mini\").")
    return LMSpec(EMBEDDED_MODEL, name="default")


def _notice(message: str) -> None:
    """Say it once per process (stderr shows in notebooks, terminals and test logs)."""
    if _STATE.noticed:
        return
    _STATE.noticed = True
    log.info(message)
    print(message, file=sys.stderr, flush=True)


def _to_spec(entry: Any) -> LMSpec:
    spec = entry if isinstance(entry, LMSpec) else spec_from_lm(entry)
    if spec.embedded and "api_base" not in spec.kwargs:
        spec = spec.with_kwargs(api_base=embedded_server().url, api_key=EMBEDDED_KEY)
    return spec


def _build(key: str | None, entry: Any) -> Any:
    if not isinstance(entry, LMSpec):
        return entry
    built = _STATE.built.get(key)
    spec = _to_spec(entry)
    if built is None or getattr(built, "_dspex_spec", None) != spec:
        built = spec.build()
        built._dspex_spec = spec
        from dspex_lab.lm.callbacks import install_callback

        install_callback(built)
        _STATE.built[key] = built
    return built


def _hand_to_dspy(lm: Any) -> None:
    """Make ``lm`` DSPy's default too; DSPy only lets its first configuring thread do that."""
    import dspy

    try:
        dspy.configure(lm=lm)
        _STATE.dspy_default = lm
    except RuntimeError as exc:
        log.info("dspex_lab: left dspy.settings.lm unchanged (%s)", exc)


# -- the embedded server ------------------------------------------------------------------------

EMBEDDED_KNOBS = ("latency_ms", "jitter_ms", "error_rate", "error_kinds", "seed",
                  "retry_after_s", "hang_s", "stream_chunk_ms", "request_limit",
                  "limit_window_s", "ratelimit_headers", "responder", "rules")


def configure_embedded(knobs: Mapping[str, Any]) -> dict[str, Any]:
    """Set the embedded LM's knobs, now and for any server started later in this process;
    returns every knob's value (``embedded_knobs()``).

    ``latency_ms``/``jitter_ms`` (each reply's delay), ``error_rate`` (0..1) with
    ``error_kinds`` (of ``lm_server.options.ERROR_KINDS``), ``seed``, ``retry_after_s`` (of
    injected 429s), ``hang_s``, ``stream_chunk_ms``, ``request_limit`` per
    ``limit_window_s`` (a real rate limit), ``ratelimit_headers``, ``responder``, ``rules``.
    Fault markers in prompts (``[[fail:500]]``, ``[[latency:250]]``) need no knob.

    >>> configure_embedded({"latency_ms": 40})["latency_ms"]
    40.0
    """
    from dspex_lab.lm_server.options import ServerOptions

    if not isinstance(knobs, Mapping):
        raise ConfigurationError(
            f"embedded= takes a dict of knobs, got {type(knobs).__name__}; e.g. "
            "configure(embedded={\"latency_ms\": 200, \"error_rate\": 0.1}).")
    unknown = sorted(set(knobs) - set(EMBEDDED_KNOBS))
    if unknown:
        raise ConfigurationError(
            f"Unknown knob {unknown[0]!r} of the embedded LM; its knobs are: "
            f"{', '.join(EMBEDDED_KNOBS)}.")
    try:
        ServerOptions().with_changes(**knobs)  # every value checked before any is applied
    except ConfigurationError as exc:
        raise ConfigurationError(f"Bad knob for the embedded LM: {exc}") from None
    with _LOCK:
        _STATE.embedded.update(knobs)
        return _public_knobs(embedded_server().configure(**knobs))


def embedded_knobs() -> dict[str, Any]:
    """The embedded LM's knobs now (starts the server if it is not running)."""
    return _public_knobs(embedded_server().options.public())


def _public_knobs(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: options[k] for k in EMBEDDED_KNOBS if k in options}


def embedded_server() -> LMServer:
    """The embedded LM server, started on first use; one per process (a forked child starts
    its own). It runs in a thread, or in a child process when the environment variable
    ``DSPEX_EMBEDDED_SERVER=process`` is set (keeps its CPU off the kernel's GIL)."""
    with _LOCK:
        server = _STATE.server
        if server is None or _STATE.server_pid != os.getpid() or not server.running:
            from dspex_lab.lm_server import LMServer

            mode = os.environ.get("DSPEX_EMBEDDED_SERVER", "thread").strip() or "thread"
            server = LMServer(**_STATE.embedded).start(mode=mode)
            _STATE.server, _STATE.server_pid = server, os.getpid()
        return server


def reset() -> None:
    """Forget every configuration, stop the embedded server and re-arm the notice (tests)."""
    global _STATE
    with _LOCK:
        old, _STATE = _STATE, _State()
    if old.server is not None and old.server_pid == os.getpid():
        old.server.stop()
    if old.dspy_default is not None and "dspy" in sys.modules:
        import dspy

        if dspy.settings.lm is old.dspy_default:
            try:
                dspy.configure(lm=None)
            except RuntimeError as exc:
                log.info("dspex_lab: could not clear dspy.settings.lm (%s)", exc)


@atexit.register
def _stop_embedded_at_exit() -> None:
    server = _STATE.server
    if server is not None and _STATE.server_pid == os.getpid():
        server.stop(timeout=1.0)

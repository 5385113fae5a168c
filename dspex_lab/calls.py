"""Single calls: ``predict``, ``chain_of_thought`` and ``react``.

Inputs are validated in the kernel first (no IPC for a bad call); a cached answer is returned
natively; anything else runs DSPy in a worker of the ``general`` pool, through the router,
with the kernel's dspy settings (adapter, ...; see ``dspex_lab.kernel_settings``).

    >>> import dspex_lab
    >>> pred = dspex_lab.predict("question -> answer", question="What is the capital of France?")
    >>> pred.answer
    'Paris'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dspex_lab import telemetry
from dspex_lab.cache import cache_key, get_cache
from dspex_lab.errors import LMError, LMTimeout
from dspex_lab.kernel_settings import KernelSettings, capture
from dspex_lab.lm import recording as _replay
from dspex_lab.lm.failures import classify
from dspex_lab.lm.spec import lm_identity
from dspex_lab.programs import Program, as_program
from dspex_lab.redaction import redact_exception
from dspex_lab.router import get_router, register
from dspex_lab.runtime import run_program


@dataclass(frozen=True, slots=True)
class CallInfo:
    """How a call went: route, latency, tokens, cost. Attached to predictions as ``_dspex``."""

    operation: str
    route: str
    model: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    cost: float
    cached: bool
    cached_at: float | None = None      # a cached answer: when it was stored (time.time())
    cached_session: str | None = None   # ... and by which session (``cache.SESSION``)

    @property
    def cache_origin(self) -> str | None:
        """Where a cached answer came from ("from an earlier session, 2 h ago"); None when
        not cached or stored without a time (by a batch run, or an older version)."""
        if not self.cached or self.cached_at is None:
            return None
        from dspex_lab.cache import origin

        return origin(self.cached_at, self.cached_session)


def _key(program: Program, inputs: dict[str, Any], lm: Any, settings: KernelSettings | None,
         temperature: float | None) -> str:
    tag = settings.cache_tag if settings is not None else None
    return cache_key(program.key, inputs, lm_identity(lm), adapter=tag, temperature=temperature)


def _native_call(program: Program, inputs: dict[str, Any], lm: Any, *,
                 settings: KernelSettings | None = None, temperature: float | None = None,
                 cache: bool = True, inline: bool = False, replay: Any = None,
                 lm_timeout: float | None = None) -> dict[str, Any]:
    """Native route: a cache hit, or (only when asked with ``implementation='native'``) DSPy
    run inline in the kernel. Anything else is declined, so the router sends it to a worker."""
    if cache:
        hit = get_cache().get(_key(program, inputs, lm, settings, temperature))
        if hit is not None:
            # a cache hit spends nothing: report zero tokens and cost, as batch runs do
            return {**hit, "cached": True, "latency_ms": 0.0, "prompt_tokens": 0,
                    "completion_tokens": 0, "cost": 0.0, "lm_usage": {}}
    if inline:
        with _replay.activated(replay):
            return _run_translating_lm_errors(program, inputs, lm, settings, temperature,
                                              lm_timeout)
    raise NotImplementedError("not in the cache")


def _pool_call(program: Program, inputs: dict[str, Any], lm: Any, *,
               settings: KernelSettings | None = None, temperature: float | None = None,
               cache: bool = True, inline: bool = False, replay: Any = None,
               lm_timeout: float | None = None) -> dict[str, Any]:
    """Pool route: runs in a worker process (recording or replaying when the kernel is)."""
    with _replay.activated(replay):
        return _run_translating_lm_errors(program, inputs, lm, settings, temperature,
                                          lm_timeout)


def _run_translating_lm_errors(program: Program, inputs: dict[str, Any], lm: Any,
                               settings: KernelSettings | None, temperature: float | None,
                               lm_timeout: float | None = None) -> dict[str, Any]:
    """``run_program``, with the LM client's own exceptions turned into ``LMError``
    (``LMTimeout`` when the LM did not answer within ``lm_timeout``)."""
    overrides = {} if lm_timeout is None else {"timeout": lm_timeout, "num_retries": 0}
    try:
        return run_program(program, inputs, lm, temperature=temperature, settings=settings,
                           lm_overrides=overrides)
    except Exception as exc:
        origin = type(exc).__module__ or ""
        if not (origin.startswith(("dspy.utils.exceptions", "litellm", "openai", "httpx"))):
            raise
        redact_exception(exc)  # a provider may echo the API key: not in our message, nor here
        status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
        status = status if isinstance(status, int) else None
        if _timed_out(exc):
            within = f"{lm_timeout} s" if lm_timeout is not None else "its timeout"
            raise LMTimeout(
                f"The LM call to {getattr(lm, 'model', lm)} got no answer within {within} "
                f"({exc}); the worker is fine. Pass a longer timeout=, or check the LM.",
                status=status, retryable=True) from exc
        raise LMError(
            f"The LM call to {getattr(lm, 'model', lm)} failed: {exc}",
            status=status, retryable=classify(exc).retryable,  # the batch runs' own rule
        ) from exc


def _timed_out(exc: BaseException) -> bool:
    """The LM client gave up waiting (litellm's ``Timeout``, DSPy's read timeouts...)."""
    return isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__ or \
        "timed out" in str(exc).lower()


def _task_timeout(timeout: float | None) -> float | None:
    """The pool's deadline for a call whose LM has ``timeout`` seconds: a margin more, so
    that a slow LM is an ``LMTimeout`` from the worker, not a killed worker."""
    return None if timeout is None else timeout + max(5.0, 0.5 * timeout)


for _op in ("predict", "chain_of_thought", "react"):
    register(_op, "native", _native_call, doc=f"{_op}: cached answers and inline runs")
    register(_op, "pool", _pool_call, pool="general", doc=f"{_op}: DSPy in a worker")


def resolve_lm(lm: Any = None) -> Any:
    """An ``LMSpec`` from None (the configured default), a configured name, a model string or
    a ``dspy.LM``."""
    from dspex_lab import lm as lm_config

    return lm_config.resolve(lm)


def call_program(operation: str, program: Program, inputs: dict[str, Any], *, lm: Any = None,
                 adapter: Any = None, temperature: float | None = None,
                 cache: bool = True, implementation: str | None = None,
                 timeout: float | None = None) -> Any:
    """Validate, route and run one call; returns a ``dspy.Prediction`` with ``_dspex`` info.

    ``adapter``: ``"chat"``/``"json"``/``"xml"`` or an adapter instance; default: the
    kernel's ``dspy.settings.adapter``. The kernel's other dspy settings travel too; those a
    worker cannot honour (callbacks, streaming) raise ``ConfigurationError`` unless the call
    runs in the kernel (``implementation="native"``). A program returning a plain value
    gives a prediction with one field, ``output``.
    """
    import dspy

    if program.signature is not None:
        inputs = program.signature.validate_inputs(inputs)
    settings = capture(adapter, check=implementation != "native")
    spec = resolve_lm(lm)
    replay = _replay.current()
    recording = replay is not None and replay.mode == "record"  # the LM must be called
    start = time.perf_counter()
    error: str | None = None
    result: dict[str, Any] = {}
    route = "?"
    try:
        result, taken = get_router().call_routed(
            operation, program, inputs, spec, settings=settings, temperature=temperature,
            cache=cache and not recording, inline=implementation == "native",
            implementation=implementation, timeout=_task_timeout(timeout), replay=replay,
            lm_timeout=timeout)
        route = taken.implementation
        if cache and not result.get("cached"):
            get_cache().put(_key(program, inputs, spec, settings, temperature),
                            _cacheable(result))
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        telemetry.emit("call", operation=operation, route=route, model=getattr(spec, "model", ""),
                       latency_ms=(time.perf_counter() - start) * 1e3,
                       prompt_tokens=result.get("prompt_tokens", 0),
                       completion_tokens=result.get("completion_tokens", 0),
                       cost=result.get("cost", 0.0), cached=bool(result.get("cached")),
                       error=error)
    outputs = result["outputs"]
    if program.signature is not None and program.dspy_signature is None:
        # (a dspy.Signature class's outputs were parsed by DSPy with the class's own types)
        checked = program.signature.validate_outputs(
            {k: outputs[k] for k in program.output_names if k in outputs})
        outputs = {**outputs, **checked}
    prediction = dspy.Prediction(**outputs)
    if result.get("completions"):  # dspy.Predict(sig, n=3): every completion, as DSPy gives
        prediction = dspy.Prediction.from_completions(result["completions"])
        prediction._store.update(outputs)
    if settings.track_usage:
        prediction.set_lm_usage(result.get("lm_usage") or {})
    prediction._dspex = CallInfo(operation, route, result.get("model", getattr(spec, "model", "")),
                                 (time.perf_counter() - start) * 1e3,
                                 result.get("prompt_tokens", 0), result.get("completion_tokens", 0),
                                 result.get("cost", 0.0), bool(result.get("cached")),
                                 result.get("cached_at"), result.get("cached_session"))
    return prediction


def _cacheable(result: dict[str, Any]) -> dict[str, Any]:
    from dspex_lab.cache import stamped

    return stamped({k: v for k, v in result.items() if k not in ("latency_ms", "lm_usage")})


def predict(sig: Any, /, *, lm: Any = None, adapter: Any = None,
            temperature: float | None = None, cache: bool = True,
            implementation: str | None = None, timeout: float | None = None,
            module_options: Mapping[str, Any] | None = None, **inputs: Any) -> Any:
    """Run ``dspy.Predict`` for ``sig`` on ``inputs``; returns a ``dspy.Prediction``.

    ``sig``: a signature string, ``Signature``, ``dspy.Signature`` class (run as it is) or a
    ``dspy.Module``. ``module_options`` are ``dspy.Predict``'s own keyword arguments (its
    config, e.g. ``{"n": 3}``); ``adapter`` a name or an adapter instance.

    >>> predict("question -> answer", question="What is 2 + 3?").answer
    '5'
    """
    program = as_program(sig, module="predict", **dict(module_options or {}))
    return call_program("predict", program, inputs, lm=lm, adapter=adapter,
                        temperature=temperature, cache=cache, implementation=implementation,
                        timeout=timeout)


def chain_of_thought(sig: Any, /, *, lm: Any = None, adapter: Any = None,
                     temperature: float | None = None, cache: bool = True,
                     implementation: str | None = None, timeout: float | None = None,
                     module_options: Mapping[str, Any] | None = None, **inputs: Any) -> Any:
    """Run ``dspy.ChainOfThought``; the prediction has ``reasoning`` plus the outputs.
    ``module_options`` are ``dspy.ChainOfThought``'s keyword arguments (``rationale_field``,
    ``rationale_field_type``, Predict's config).

    >>> chain_of_thought("question -> answer: int", question="What is 6 * 7?").answer
    42
    """
    program = as_program(sig, module="cot", **dict(module_options or {}))
    return call_program("chain_of_thought", program, inputs, lm=lm, adapter=adapter,
                        temperature=temperature, cache=cache, implementation=implementation,
                        timeout=timeout)


def react(sig: Any, /, *, tools: Sequence[Callable[..., Any]], lm: Any = None,
          adapter: Any = None, temperature: float | None = None, cache: bool = True,
          implementation: str | None = None, timeout: float | None = None,
          max_iters: int | None = None, **inputs: Any) -> Any:
    """Run ``dspy.ReAct`` with Python ``tools`` (notebook-defined functions work too);
    ``max_iters`` defaults to DSPy's (20).

    >>> def add(a: int, b: int) -> int: return a + b
    >>> react("question -> answer", tools=[add], question="What is 2 + 3?").answer
    """
    options = {} if max_iters is None else {"max_iters": max_iters}
    program = as_program(sig, module="react", tools=tools, **options)
    return call_program("react", program, inputs, lm=lm, adapter=adapter,
                        temperature=temperature, cache=cache, implementation=implementation,
                        timeout=timeout)

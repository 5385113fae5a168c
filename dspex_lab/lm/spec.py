"""``LMSpec``: a model string plus ``dspy.LM`` keyword arguments, as a small value.

Worker processes receive an ``LMSpec`` (it pickles, hashes and compares by value) and build
their own ``dspy.LM`` from it. Its repr never shows secrets.

    >>> LMSpec("openai/gpt-4o-mini", {"api_key": "sk-secret-123456"})
    LMSpec(model='openai/gpt-4o-mini', kwargs={'api_key': '***'})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dspex_lab.redaction import redact, remember

if TYPE_CHECKING:
    import dspy

__all__ = ["EMBEDDED_MODEL", "LMSpec", "lm_identity", "spec_from_lm"]

EMBEDDED_MODEL = "openai/dspex-embedded"
_NOT_KWARGS = {"callbacks"}


@dataclass(frozen=True)
class LMSpec:
    """A model string plus ``dspy.LM`` keyword arguments: small, picklable, hashable, and
    never showing secrets in its repr.

    >>> spec = LMSpec("openai/gpt-4o-mini", {"api_key": "sk-secret-123456", "temperature": 0})
    >>> spec
    LMSpec(model='openai/gpt-4o-mini', kwargs={'api_key': '***', 'temperature': 0})
    >>> spec.build().model                                             # doctest: +SKIP
    'openai/gpt-4o-mini'
    """

    model: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.embedded:        # its api_key is masked wherever it shows up
            remember(self.kwargs)

    def build(self) -> dspy.LM:
        """A new ``dspy.LM`` with this model and these keyword arguments."""
        import dspy

        self.__post_init__()         # (again: an unpickled spec skipped it)
        return dspy.LM(self.model, **dict(self.kwargs))

    @property
    def embedded(self) -> bool:
        """True for the embedded offline server's model."""
        return self.model == EMBEDDED_MODEL

    def redacted(self) -> dict[str, Any]:
        """The keyword arguments with secrets replaced by ``***``."""
        return redact(dict(self.kwargs))

    def with_kwargs(self, **kwargs: Any) -> LMSpec:
        """A copy with ``kwargs`` merged in."""
        return replace(self, kwargs={**self.kwargs, **kwargs})

    def __repr__(self) -> str:
        return f"LMSpec(model={self.model!r}, kwargs={self.redacted()!r})"

    __str__ = __repr__

    def __hash__(self) -> int:
        return hash((self.model, _freeze(self.kwargs)))


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple | set):
        return tuple(_freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def spec_from_lm(lm: Any) -> LMSpec:
    """The ``LMSpec`` of an existing ``dspy.LM`` (its model, kwargs and client settings)."""
    kwargs = {k: v for k, v in dict(getattr(lm, "kwargs", {}) or {}).items()
              if k not in _NOT_KWARGS and v is not None}
    for attr in ("cache", "num_retries", "model_type"):
        if hasattr(lm, attr):
            kwargs[attr] = getattr(lm, attr)
    engine = getattr(lm, "_engine_spec", None)
    if isinstance(engine, str) and engine != "auto":
        kwargs["engine"] = engine
    return LMSpec(str(lm.model), kwargs)


def lm_identity(lm: Any) -> str:
    """What identifies an LM for caching (model and settings; never the key, never the port
    of the embedded server, which changes with every kernel)."""
    model = str(getattr(lm, "model", lm))
    drop = {"api_key", "callbacks"}
    if "dspex-embedded" in model:
        drop |= {"api_base", "base_url"}
    kwargs = {k: v for k, v in (getattr(lm, "kwargs", None) or {}).items() if k not in drop}
    return f"{model}|{sorted(kwargs.items())!r}"

"""What a run returns: ``PipelineResult`` (the final state, dict-like) and its ``StepResult``s.

    >>> result = pipeline(question="What is the capital of France?")
    >>> result["answer"], result.answer, result.outputs
    ('Paris', 'Paris', {'answer': 'Paris'})
    >>> [(r.name, r.route, round(r.latency_ms)) for r in result.trace]
    [('clean', 'native', 0), ('answer', 'pool', 12)]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PipelineResult", "StepResult"]


@dataclass(eq=False, slots=True)
class StepResult:
    """One step of one run.

    ``status`` is ``ok``, ``error`` or ``skipped`` (its inputs were missing because an earlier
    step failed); ``route`` is ``native`` (in the kernel), ``pool`` (a worker), ``inline``
    (DSPy in this process) or ``mixed`` for a compound step; ``detail`` says which branch a
    ``when`` took or how many items a ``map`` had; a ``map``'s per-item results are
    ``children``.
    """

    name: str
    kind: str
    status: str = "ok"
    route: str = ""
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cached: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)
    path: str = ""
    depth: int = 0
    index: int = 0
    started_ms: float = 0.0
    detail: str = ""
    children: list[StepResult] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add_usage(self, leaf: StepResult) -> None:
        """Add a leaf's tokens, cost and route to this (compound) result."""
        self.prompt_tokens += leaf.prompt_tokens
        self.completion_tokens += leaf.completion_tokens
        self.cost += leaf.cost
        if leaf.route:
            self.route = leaf.route if self.route in ("", leaf.route) else "mixed"

    def as_row(self) -> dict[str, Any]:
        """A flat dict (for a DataFrame)."""
        return {"step": self.name, "path": self.path, "kind": self.kind, "status": self.status,
                "route": self.route, "latency_ms": self.latency_ms,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cost": self.cost, "cached": self.cached, "detail": self.detail,
                "error": self.error, "outputs": self.outputs}


class PipelineResult(Mapping):
    """The final state of a run (every input and every field written) plus its trace.

    Reads like a dict (``result["answer"]``) and like attributes (``result.answer``).
    ``trace`` lists every step in start order (nested steps have ``depth`` > 0); ``errors`` the
    steps that failed or were skipped; ``outputs`` the pipeline's output fields.
    """

    def __init__(self, state: dict[str, Any], trace: list[StepResult], inputs: tuple[str, ...],
                 outputs: tuple[str, ...], name: str, latency_ms: float) -> None:
        self.state = state
        self.trace = trace
        self.input_names = inputs
        self.output_names = outputs
        self.name = name
        self.latency_ms = latency_ms

    # -- mapping ---------------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.state[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.state)

    def __len__(self) -> int:
        return len(self.state)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "state":
            raise AttributeError(name)
        try:
            return self.state[name]
        except KeyError:
            raise AttributeError(f"The result has no field {name!r}; it has: "
                                 f"{', '.join(self.state)}.") from None

    # -- summaries -------------------------------------------------------------------------------
    @property
    def outputs(self) -> dict[str, Any]:
        """The pipeline's output fields (those present)."""
        return {k: self.state[k] for k in self.output_names if k in self.state}

    @property
    def errors(self) -> list[StepResult]:
        """Steps that failed or were skipped (top level and nested, not map items)."""
        return [r for r in self.trace if r.status != "ok" and not _has_failed_child(r, self)]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def leaves(self) -> list[StepResult]:
        return [r for r in self.trace if r.kind in ("native", "dspy")]

    @property
    def prompt_tokens(self) -> int:
        return sum(r.prompt_tokens for r in self.trace if r.depth == 0)

    @property
    def completion_tokens(self) -> int:
        return sum(r.completion_tokens for r in self.trace if r.depth == 0)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost(self) -> float:
        return sum(r.cost for r in self.trace if r.depth == 0)

    def step(self, name: str) -> StepResult:
        """The result of the step called ``name``."""
        for r in self.trace:
            if r.name == name:
                return r
        raise KeyError(f"No step {name!r} in this run; steps: "
                       f"{', '.join(r.name for r in self.trace)}.")

    def to_frame(self) -> Any:
        """The trace as a pandas DataFrame (one row per step)."""
        import pandas as pd

        return pd.DataFrame([r.as_row() for r in self.trace])

    # -- display ---------------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        from dspex_lab.pipeline.display import trace_html

        return trace_html(self)

    def _repr_markdown_(self) -> str:
        from dspex_lab.pipeline.display import trace_markdown

        return trace_markdown(self)

    def __repr__(self) -> str:
        from dspex_lab.pipeline.display import trace_text

        return trace_text(self)


def _has_failed_child(res: StepResult, result: PipelineResult) -> bool:
    """True for a compound step whose failure is a failed step inside it (listed itself)."""
    prefix = res.path + "/"
    return any(r.path.startswith(prefix) and r.status != "ok" for r in result.trace)

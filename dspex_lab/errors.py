"""Every error dspex_lab raises, in one place.

The tree::

    DspexError
    ├── SignatureError        bad signature text (message shows the text and a caret)
    ├── ValidationError       inputs/outputs that do not fit a signature (lists every problem)
    ├── DataError             data that cannot be read as a table (wrong kind, bad columns)
    ├── ConfigurationError    bad or missing configuration (LM, pools, backend)
    ├── RoutingError          an operation or implementation nobody registered
    ├── ProtocolError         a malformed, truncated or unknown wire frame
    ├── TemplateError         a template with bad syntax or missing variables
    ├── PipelineError         a pipeline that is wired wrong or failed at a step
    │   └── StepTimeout       a step ran past the run's (or row's) ``timeout``
    ├── LMError               an LM call failed (after retries); ``status`` when HTTP
    │   ├── CircuitOpen       the circuit breaker refuses calls to a failing LM
    │   └── LMTimeout         the LM did not answer within the call's ``timeout``
    ├── BudgetExceeded        a run would spend more than its ``budget_usd``
    ├── RunError              a batch run finished with failed rows (``on_error="raise"``)
    ├── TaskError             a task sent to a pool did not produce a result
    │   ├── RemoteError       the task raised in the worker (worker traceback as ``__cause__``)
    │   ├── WorkerCrashed     the worker process died while running the task, too often
    │   ├── TaskTimeout       the task ran past its timeout; the worker was replaced
    │   └── TaskCancelled     the task was cancelled (KeyboardInterrupt, cancel button)
    ├── PoolError             the pool itself is unusable (closed, broken, queue full)
    └── Interrupted           a magic's call or run was interrupted (shown as one line)

"The call failed" (``TaskError``) and "the pool broke" (``PoolError``) are different errors.
Messages are full sentences that name the bad value and say what to do next.
"""

from __future__ import annotations

__all__ = [
    "BudgetExceeded",
    "CircuitOpen",
    "ConfigurationError",
    "DataError",
    "DspexError",
    "Interrupted",
    "LMError",
    "LMTimeout",
    "PipelineError",
    "PoolError",
    "ProtocolError",
    "RemoteError",
    "RoutingError",
    "RunError",
    "SignatureError",
    "StepTimeout",
    "TaskCancelled",
    "TaskError",
    "TaskTimeout",
    "TemplateError",
    "ValidationError",
    "WorkerCrashed",
]


class DspexError(Exception):
    """Base class of every dspex_lab error."""


class SignatureError(DspexError, ValueError):
    """Signature text that does not parse.

    ``text`` is the signature, ``column`` the 0-based offset of the problem, ``expected`` what
    the parser wanted there. ``str(err)`` shows the text with a caret under the column.
    """

    def __init__(self, message: str, text: str = "", column: int | None = None,
                 expected: str | None = None) -> None:
        self.reason = message
        self.text = text
        self.column = column
        self.expected = expected
        super().__init__(self._render())

    def _render(self) -> str:
        if self.column is None or not self.text:
            return self.reason
        line = self.text.replace("\n", " ")
        col = max(0, min(self.column, len(line)))
        return f"{self.reason} (column {col + 1})\n  {line}\n  {' ' * col}^"

    def __reduce__(self):  # picklable across processes
        return (type(self), (self.reason, self.text, self.column, self.expected))


class ValidationError(DspexError, ValueError):
    """Values that do not fit a signature. ``problems`` is a list of ``(field, message)``."""

    def __init__(self, problems: list[tuple[str, str]], what: str = "inputs") -> None:
        self.problems = list(problems)
        self.what = what
        lines = "\n".join(f"  - {field}: {msg}" for field, msg in self.problems)
        n = len(self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''} with the {what}:\n{lines}")

    def __reduce__(self):
        return (type(self), (self.problems, self.what))


class ConfigurationError(DspexError):
    """Configuration that is missing, unknown or of the wrong shape."""


class RoutingError(DspexError, LookupError):
    """An operation or implementation that is not registered."""


class ProtocolError(DspexError):
    """A wire frame that is malformed, truncated or of an unknown type."""


class TemplateError(DspexError, ValueError):
    """A template with bad syntax, or rendered without a variable it needs."""


class PipelineError(DspexError):
    """A pipeline wired wrong (found when built) or failing at a step. ``step`` names it."""

    def __init__(self, message: str, step: str | None = None,
                 errors: list[BaseException] | None = None) -> None:
        self.step = step
        self.errors = list(errors or [])
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (str(self), self.step, self.errors))


class LMError(DspexError):
    """An LM call failed. ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False) -> None:
        self.status = status
        self.retryable = retryable
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (str(self), self.status, self.retryable))


class CircuitOpen(LMError):
    """The circuit breaker stopped calling an LM that kept failing."""


class BudgetExceeded(DspexError):
    """A run reached its spend budget (``budget_usd``)."""


class RunError(DspexError):
    """A batch run (``dspex_lab.run(..., on_error="raise")``) had rows that failed.

    ``rows`` are the failed row positions, ``first_error`` the first row's error and ``total``
    the number of rows; the whole frame (with an ``error`` column) is in
    ``dspex_lab.last_run()``.
    """

    def __init__(self, rows: list[int], first_error: str = "", total: int = 0) -> None:
        self.rows = list(rows)
        self.first_error = first_error
        self.total = total
        shown = ", ".join(map(str, self.rows[:10])) + (", ..." if len(self.rows) > 10 else "")
        super().__init__(
            f"{len(self.rows):,} of {total:,} rows failed (rows {shown}). The first error: "
            f"{first_error} The frame, with an 'error' column, is in dspex_lab.last_run(); "
            "run again to retry only the failed rows, or pass on_error='record'.")

    def __reduce__(self):
        return (type(self), (self.rows, self.first_error, self.total))


class TaskError(DspexError):
    """A task sent to a worker pool did not produce a result."""


class RemoteError(TaskError):
    """The task raised an exception inside a worker.

    ``remote_type`` is the exception's class name, ``remote_traceback`` the worker's formatted
    traceback (also attached as ``__cause__``).
    """

    def __init__(self, message: str, remote_type: str = "Exception",
                 remote_traceback: str = "") -> None:
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (str(self), self.remote_type, self.remote_traceback))


class WorkerCrashed(TaskError):
    """The worker running a task died (killed, segfault, out of memory) on every attempt."""


class TaskTimeout(TaskError, TimeoutError):
    """A task ran past its timeout; its worker was killed and replaced."""


class TaskCancelled(TaskError):
    """A task was cancelled before it finished."""


class PoolError(DspexError):
    """The pool itself is unusable: closed, broken or its queue is full."""


class DataError(DspexError, TypeError, ValueError):
    """Data that cannot be read as a table of rows: not table-like, ambiguous or bad column
    names, columns of different lengths. (A ``TypeError`` and a ``ValueError`` too, as the
    errors it replaces were.)"""


class Interrupted(DspexError):
    """A call or run started from a magic was interrupted (Ctrl-C, the stop button). IPython
    shows its message as one line instead of a traceback of library internals."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


class LMTimeout(LMError, TimeoutError):
    """The LM did not answer within the call's ``timeout`` (the worker is kept)."""


class StepTimeout(PipelineError, TimeoutError):
    """A pipeline step ran past the run's (or the batch row's) ``timeout``. Only that run or
    row fails; a native step that never returns is left running in an abandoned daemon thread
    (Python cannot kill a thread)."""

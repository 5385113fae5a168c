"""IPython formatters: show every ``dspy.Prediction`` with ``prediction_html``.

Registered by name, so DSPy is not imported until a prediction is displayed. ``unregister``
removes only what ``register`` added (a user's own formatter is left alone).

    >>> register(get_ipython())        # done by %load_ext dspex_lab
    >>> unregister(get_ipython())      # done by %unload_ext dspex_lab
"""

from __future__ import annotations

from typing import Any

from dspex_lab.display.prediction import prediction_html

__all__ = ["PREDICTION_TYPE", "register", "unregister"]

PREDICTION_TYPE = ("dspy.primitives.prediction", "Prediction")


def _html_formatter(shell: Any) -> Any:
    formatter = getattr(shell, "display_formatter", None)
    return None if formatter is None else formatter.formatters.get("text/html")


def _current(formatter: Any) -> Any:
    module, name = PREDICTION_TYPE
    printer = formatter.deferred_printers.get((module, name))
    if printer is None:
        printer = next((p for cls, p in formatter.type_printers.items()
                        if (getattr(cls, "__module__", None), getattr(cls, "__name__", None))
                        == PREDICTION_TYPE), None)
    return printer


def register(shell: Any) -> bool:
    """Make ``shell`` render predictions as HTML; False when it has no HTML formatter or
    another formatter is already registered for them."""
    formatter = _html_formatter(shell)
    if formatter is None:
        return False
    current = _current(formatter)
    if current is not None and current is not prediction_html:
        return False
    formatter.for_type_by_name(*PREDICTION_TYPE, prediction_html)
    return True


def unregister(shell: Any) -> None:
    """Undo ``register`` (no-op when it did not register)."""
    formatter = _html_formatter(shell)
    if formatter is not None and _current(formatter) is prediction_html:
        formatter.pop(".".join(PREDICTION_TYPE), None)

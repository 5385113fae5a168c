"""Small helpers shared by the widgets: HTML snippets, icon buttons, the user namespace, and a
rate-limited background ticker. Nothing here holds widget logic.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w

__all__ = ["Ticker", "code_html", "error_html", "icon_button", "table_html", "user_namespace"]

log = logging.getLogger("dspex_lab.widgets")

_PRE = ("margin:0;padding:6px 8px;background:var(--jp-layout-color2,#f5f5f5);"
        "border-radius:4px;white-space:pre-wrap;font-family:var(--jp-code-font-family,monospace);"
        "font-size:12px")


def code_html(text: str, title: str | None = None) -> str:
    """``text`` in a monospaced block, with an optional bold title."""
    head = f"<b>{html.escape(title)}</b>" if title else ""
    return f"{head}<pre style='{_PRE}'>{html.escape(text)}</pre>"


def error_html(messages: list[str]) -> str:
    """Error messages (caret lines kept) in red; a green check when there are none."""
    if not messages:
        return "<span style='color:#1a7f37'>&#10003; valid</span>"
    body = "\n\n".join(messages)
    return f"<pre style='{_PRE};color:#b42318'>{html.escape(body)}</pre>"


def icon_button(icon: str, tooltip: str, on_click: Callable[[], Any]) -> w.Button:
    """A small square button that calls ``on_click()``."""
    button = w.Button(icon=icon, tooltip=tooltip, layout=w.Layout(width="32px", padding="0"))
    button.on_click(lambda _b: on_click())
    return button


def table_html(frame: Any, max_rows: int = 20, max_chars: int = 80) -> str:
    """The last ``max_rows`` rows of a DataFrame as a small HTML table: every header cell
    aligned with its column, status colours, error causes, rounded floats, long text cut."""
    from dspex_lab.display.frame import ResultTable

    if frame is None or len(frame) == 0:
        return "<i>no rows yet</i>"
    return ResultTable(frame.tail(max_rows), max_rows=max_rows, max_chars=max_chars,
                       caption="")._repr_html_()


def user_namespace() -> Mapping[str, Any]:
    """The IPython user namespace, or an empty dict outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return {}
    shell = get_ipython()
    return shell.user_ns if shell is not None else {}


class Ticker:
    """Calls ``tick()`` from a daemon thread every ``interval`` seconds until ``stop()``.

    Widgets use it to push state to the frontend at a bounded rate while the kernel is busy;
    a failing tick is logged, never raised.

    >>> t = Ticker(0.5, refresh).start(); ...; t.stop()
    """

    def __init__(self, interval: float, tick: Callable[[], Any], name: str = "dspex-ticker"
                 ) -> None:
        self.interval = interval
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._tick()
            except Exception:  # a display glitch must not kill the ticker
                log.exception("widget refresh failed")

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and wait for it (at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

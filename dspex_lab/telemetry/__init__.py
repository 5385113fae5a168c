"""Telemetry: every call emits events; plots and exports subscribe to them.

    >>> from dspex_lab import telemetry
    >>> unsubscribe = telemetry.subscribe(print)
    >>> telemetry.events()          # a pandas DataFrame of the buffered events
"""

from dspex_lab.telemetry.bus import (
    Event,
    clear,
    emit,
    events,
    get_bus,
    redact,
    subscribe,
    summary,
)

__all__ = ["Event", "clear", "emit", "events", "get_bus", "redact", "subscribe", "summary"]

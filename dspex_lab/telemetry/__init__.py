"""Telemetry: every call emits events; plots and exports subscribe to them.

    >>> from dspex_lab import telemetry
    >>> unsubscribe = telemetry.subscribe(print)
    >>> telemetry.events()          # a pandas DataFrame of the buffered events
"""

from dspex_lab.telemetry.bus import (
    CALLS,
    Event,
    call_totals,
    clear,
    emit,
    events,
    get_bus,
    per_call,
    redact,
    subscribe,
    summary,
)
from dspex_lab.telemetry.export import export

__all__ = ["CALLS", "Event", "call_totals", "clear", "emit", "events", "export",
           "export_to_otel", "get_bus", "per_call", "redact", "subscribe", "summary"]


def export_to_otel(*args, **kwargs):
    """Export events as OpenTelemetry spans (needs ``opentelemetry-sdk``); see ``otel``."""
    from dspex_lab.telemetry.otel import export_to_otel as _export

    return _export(*args, **kwargs)

"""The telemetry bus: buffer, subscribers, redaction, DataFrame views."""

from dspex_lab.telemetry.bus import Bus, redact


def test_subscribers_get_events_and_can_unsubscribe():
    bus = Bus()
    seen = []
    unsubscribe = bus.subscribe(seen.append)
    bus.emit("lm.call", latency_ms=1.0)
    unsubscribe()
    bus.emit("lm.call", latency_ms=2.0)
    assert [e.fields["latency_ms"] for e in seen] == [1.0]
    assert len(bus.snapshot()) == 2


def test_failing_subscriber_never_breaks_the_caller():
    bus = Bus()

    def broken(event):
        raise RuntimeError("boom")

    bus.subscribe(broken)
    event = bus.emit("x", n=1)
    assert event.fields == {"n": 1}


def test_buffer_is_bounded():
    bus = Bus(maxlen=10)
    for i in range(25):
        bus.emit("tick", i=i)
    events = bus.snapshot()
    assert len(events) == 10 and events[0].fields["i"] == 15


def test_keys_never_reach_the_buffer():
    bus = Bus()
    event = bus.emit("lm.call", api_key="sk-live-1234567890", model="m",
                     headers={"Authorization": "Bearer abcdefghijklmnop"},
                     note="used key sk-abcdefghijkl1234 today")
    assert event.fields["api_key"] == "***"
    assert event.fields["headers"]["Authorization"] == "***"
    assert "sk-" not in event.fields["note"]
    assert redact({"token": "x", "n": 1}) == {"token": "***", "n": 1}


def test_prompt_redaction_when_configured():
    bus = Bus()
    bus.redact_prompts = True
    assert bus.emit("lm.call", prompt="secret question").fields["prompt"] == "<redacted>"


def test_snapshot_filters_by_kind_and_prefix():
    bus = Bus()
    bus.emit("pool.task_started")
    bus.emit("pool.task_finished")
    bus.emit("lm.call")
    assert len(bus.snapshot("pool")) == 2
    assert len(bus.snapshot("lm.call")) == 1


def test_events_dataframe_and_summary():
    from dspex_lab import telemetry

    telemetry.clear()
    telemetry.emit("lm.call", latency_ms=10.0, prompt_tokens=5, completion_tokens=2, cost=0.1,
                   error=None)
    telemetry.emit("lm.call", latency_ms=30.0, prompt_tokens=7, completion_tokens=3, cost=0.2,
                   error="LMError")
    df = telemetry.events("lm")
    assert list(df["latency_ms"]) == [10.0, 30.0]
    summary = telemetry.summary("lm.call")
    row = summary.loc["lm.call"]
    assert row["count"] == 2 and row["prompt_tokens"] == 12 and row["errors"] == 1
    assert row["p50_ms"] == 20.0
    telemetry.clear()
    assert telemetry.events().empty

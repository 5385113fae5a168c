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


def calls_table(n, error_at=None, start=0):
    import pyarrow as pa

    return pa.table({"row": list(range(start, start + n)),
                     "latency_ms": [10.0 + i for i in range(n)],
                     "prompt_tokens": [3] * n, "completion_tokens": [2] * n,
                     "cost": [0.25] * n,
                     "error": [("boom" if i == error_at else None) for i in range(n)],
                     "cached": [False] * n})


def test_a_columnar_calls_event_reads_as_one_call_per_row():
    from dspex_lab.telemetry.bus import CALLS, per_call

    bus = Bus()
    event = bus.emit(CALLS, run_id="r", route="pool", calls=calls_table(3, error_at=1))
    rows = [e.fields for e in per_call(event)]
    assert [r["row"] for r in rows] == [0, 1, 2] and {r["route"] for r in rows} == {"pool"}
    assert [r["error"] for r in rows] == [None, "boom", None]
    assert all(e.kind == "lm.call" for e in per_call(event))
    assert [e.kind for e in per_call(bus.emit("other", x=1))] == ["other"]
    assert bus.snapshot("lm.call") == [event]  # asking for calls finds the batch event


def test_calls_events_weigh_their_rows_in_the_bound():
    from dspex_lab.telemetry.bus import CALLS

    bus = Bus(maxlen=10)
    bus.emit("tick")
    bus.emit(CALLS, calls=calls_table(6))
    bus.emit(CALLS, calls=calls_table(4, start=6))
    assert [e.kind for e in bus.snapshot()] == [CALLS, CALLS]  # 1 + 6 + 4 > 10: tick went
    bus.emit(CALLS, calls=calls_table(30))
    assert [e.fields["calls"].num_rows for e in bus.snapshot()] == [30]  # never empty


def test_secrets_in_a_calls_table_are_masked():
    from dspex_lab.telemetry.bus import CALLS

    table = calls_table(2)
    table = table.set_column(table.column_names.index("error"), "error",
                             __import__("pyarrow").array(["Invalid key sk-abcdef1234567890",
                                                         None]))
    event = Bus().emit(CALLS, calls=table)
    assert event.fields["calls"].column("error").to_pylist() == ["Invalid key ***", None]


def test_events_dataframe_expands_batch_calls(monkeypatch):
    from dspex_lab.telemetry import bus as module

    monkeypatch.setattr(module, "_BUS", Bus())
    module.emit("lm.call", model="single", latency_ms=5.0)
    module.emit(module.CALLS, model="batch", route="pool", calls=calls_table(3))
    module.emit("run.finished", rows=3)
    frame = module.events("lm.call")
    assert frame["model"].tolist() == ["single", "batch", "batch", "batch"]
    assert frame["row"].dropna().tolist() == [0, 1, 2]
    assert module.events()["kind"].tolist() == ["lm.call"] * 4 + ["run.finished"]
    assert module.summary().loc["lm.call", "count"] == 4


def test_call_totals_sum_a_calls_table():
    from dspex_lab.telemetry import call_totals

    sums = call_totals(calls_table(4, error_at=2))
    assert (sums["calls"], sums["errors"], sums["timed"]) == (4, 1, 4)
    assert (sums["prompt_tokens"], sums["completion_tokens"], sums["cost"]) == (12, 8, 1.0)
    assert sums["latency_ms"] == 10 + 11 + 12 + 13 and sums["cached"] == 0
    partial = call_totals(calls_table(2).select(["row", "cost"]))
    assert (partial["calls"], partial["errors"], partial["timed"], partial["cost"]) == (2, 0, 0,
                                                                                       0.5)


def test_call_totals_count_failed_rows_by_status_not_rows_that_never_ran():
    import pyarrow as pa

    from dspex_lab.telemetry import call_totals

    table = pa.table({"status": ["ok", "error", "not_run", "invalid", "cached"],
                      "error": [None, "LMServerError: 500", "CircuitOpen: open", "bad", None],
                      "cached": [False, False, False, False, True]})
    sums = call_totals(table)
    assert (sums["calls"], sums["errors"]) == (3, 2)  # not_run and invalid made no call

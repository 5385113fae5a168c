"""``telemetry.export``: the buffered events to Parquet, CSV and JSON lines."""

import json

import pandas as pd
import pytest

from dspex_lab import telemetry
from dspex_lab.errors import ConfigurationError
from dspex_lab.telemetry.export import export


@pytest.fixture(autouse=True)
def events():
    telemetry.clear()
    telemetry.emit("lm.call", model="m", latency_ms=3.5, error=None, row=1,
                   extra={"a": [1, 2]})
    telemetry.emit("lm.call", model="m", latency_ms=4.0, error="TimeoutError: x", row="r2")
    telemetry.emit("pool.task_finished", name="f", duration_ms=2.0)
    yield
    telemetry.clear()


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_every_format_holds_every_event(tmp_path, suffix):
    path = export(tmp_path / "sub" / f"events{suffix}")
    assert path.exists()
    if suffix == ".parquet":
        back = pd.read_parquet(path)
    elif suffix == ".csv":
        back = pd.read_csv(path)
    else:
        back = pd.read_json(path, lines=True)
    assert back["kind"].tolist() == ["lm.call", "lm.call", "pool.task_finished"]
    assert back["latency_ms"].tolist()[:2] == [3.5, 4.0]
    assert [str(v) for v in back["row"].tolist()[:2]] == ["1", "r2"]  # mixed types -> text
    assert json.loads(back["extra"].iloc[0]) == {"a": [1, 2]}


def test_kind_filter_and_explicit_format(tmp_path):
    path = export(tmp_path / "calls.data", kind="lm.call", format="jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["error"] == "TimeoutError: x"


def test_unknown_format_says_what_to_do(tmp_path):
    with pytest.raises(ConfigurationError, match=r"\.parquet, \.csv or \.jsonl"):
        export(tmp_path / "events.xlsx")

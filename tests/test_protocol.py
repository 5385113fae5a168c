"""The wire protocol in one process: formats, framing errors, shared memory, error frames."""

from __future__ import annotations

import contextlib
import struct
import traceback

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dspex_lab.errors import ProtocolError, RemoteError, ValidationError
from dspex_lab.exchange import shm
from dspex_lab.workers import protocol


@pytest.fixture(autouse=True)
def no_leaked_segments():
    before = set(shm.list_segments(pid=None))
    yield
    leaked = set(shm.list_segments(pid=None)) - before
    for name in leaked:
        shm.unlink_segment(name)
    assert not leaked, f"shared-memory segments leaked: {leaked}"


def small_df() -> pd.DataFrame:
    return pd.DataFrame({"n": [1, 2, 3], "q": ["a", None, "c"], "tags": [["x"], None, ["y", "z"]],
                         "t": pd.to_datetime(["2024-01-01", None, "2024-01-03"])},
                        index=pd.Index([10, 20, 30], name="row"))


class Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x


def rich_message() -> dict:
    df = small_df()
    return {"id": 42, "op": "run", "df": df, "series": df["n"], "args": (1, ("a", None)),
            "table": pa.table({"x": [1.5, None]}), "batch": pa.record_batch({"y": ["b"]}),
            "fn": lambda v: v * 2, "point": Point(3), "array": np.arange(6.0).reshape(2, 3),
            "nested": {"k": [1, 2.5, True, None, b"raw"]}, 7: "int key"}


def check_rich(got: dict, sent: dict) -> None:
    pd.testing.assert_frame_equal(got["df"], sent["df"])
    pd.testing.assert_series_equal(got["series"], sent["series"])
    assert got["table"].equals(sent["table"]) and got["batch"].equals(sent["batch"])
    assert got["args"] == (1, ("a", None)) and isinstance(got["args"][1], tuple)
    assert got["fn"](21) == 42 and got["point"] == Point(3)
    np.testing.assert_array_equal(got["array"], sent["array"])
    got["array"][0, 0] = -1          # arrays arrive writable
    assert got["nested"] == sent["nested"] and got[7] == "int key" and got["id"] == 42


@pytest.mark.parametrize("fmt", [None, "arrow", "shm", "pickle"])
def test_rich_message_round_trips(fmt):
    sent = rich_message()
    check_rich(protocol.unpack(protocol.pack(sent, fmt)), sent)


@pytest.mark.parametrize("fmt", [None, "json", "msgpack", "arrow", "shm", "pickle"])
def test_plain_message_round_trips(fmt):
    sent = {"id": "t-1", "op": "ping", "x": [1, -2, 3.25, "é", None, True], "d": {"a": {}}}
    assert protocol.unpack(protocol.pack(sent, fmt)) == sent


def test_frame_info_reads_the_id_without_attachments():
    for fmt in (None, "json", "pickle", "shm"):
        data = protocol.pack({"id": 9, "df": small_df()} if fmt != "json" else {"id": 9}, fmt)
        info = protocol.frame_info(data)
        assert info.id == 9 and info.size == len(data)
        protocol.discard(data)


def test_json_refuses_non_json_values_naming_the_key():
    with pytest.raises(TypeError, match=r"message\['payload'\]\['f'\] = builtin_function"):
        protocol.pack({"id": 1, "payload": {"f": print}}, fmt="json")
    with pytest.raises(TypeError, match="JSON keys must be strings"):
        protocol.pack({"id": 1, "d": {1: "x"}}, fmt="json")


def test_msgpack_refuses_attachments_naming_the_key():
    with pytest.raises(TypeError, match=r"message\['rows'\]\[1\] = DataFrame.*fmt=None"):
        protocol.pack({"rows": [0, small_df()]}, fmt="msgpack")


def test_unknown_format_and_unpicklable_values_are_clear():
    with pytest.raises(ValueError, match="Unknown wire format 'xml'"):
        protocol.pack({}, fmt="xml")
    import threading

    with pytest.raises(TypeError, match=r"message\['lock'\] = lock.*cloudpickle failed"):
        protocol.pack({"lock": threading.Lock()})


def test_mixed_object_column_falls_back_to_pickle_and_round_trips():
    df = pd.DataFrame({"mixed": [1, "a", 2.5], "ok": [1, 2, 3]})
    got = protocol.unpack(protocol.pack({"df": df}))["df"]
    pd.testing.assert_frame_equal(got, df)


def test_same_object_twice_is_sent_once():
    df = small_df()
    got = protocol.unpack(protocol.pack({"a": df, "b": [df]}))
    assert got["a"] is got["b"][0]


def test_auto_uses_shared_memory_above_the_threshold(monkeypatch):
    df = pd.DataFrame({"x": np.arange(1000)})
    assert protocol.frame_info(protocol.pack({"df": df})).kind == "msgpack"
    monkeypatch.setattr(protocol, "SHM_THRESHOLD", 1000)
    data = protocol.pack({"df": df})
    assert protocol.frame_info(data).kind == "shm" and len(data) < 1000
    pd.testing.assert_frame_equal(protocol.unpack(data)["df"], df)


def test_shm_frame_is_read_once_and_unlinked():
    data = protocol.pack({"id": 1, "df": small_df()}, fmt="shm")
    name = protocol.frame_info(data).shm
    assert name in shm.list_segments()
    protocol.unpack(data)
    assert name not in shm.list_segments()
    with pytest.raises(ProtocolError, match="does not exist"):
        protocol.unpack(data)


def test_shm_segment_is_unlinked_even_when_the_frame_is_corrupt():
    data = bytearray(protocol.pack({"id": 1, "df": small_df()}, fmt="shm"))
    name = protocol.frame_info(bytes(data)).shm
    data[-2:] = b"\xc1\xc1"            # 0xc1 is never valid msgpack: the message part breaks
    with pytest.raises(ProtocolError):
        protocol.unpack(bytes(data))
    assert name not in shm.list_segments()


def test_discard_releases_an_undelivered_frame():
    data = protocol.pack({"df": small_df()}, fmt="shm")
    protocol.discard(data)
    assert protocol.frame_info(data).shm not in shm.list_segments()


# ----------------------------------------------------------------------------- 1M rows

@pytest.fixture(scope="module")
def million() -> pd.DataFrame:
    n = 1_000_000
    rng = np.random.default_rng(0)
    strings = pd.Series(np.arange(n)).astype(str).radd("s")
    strings[::11] = None
    floats = rng.random(n)
    floats[::13] = np.nan
    # list<string> as an Arrow-backed column: object columns of Python lists also round-trip
    # (small_df) but cost ~0.4 s per million rows each way in pyarrow itself.
    offsets = pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32))
    tags = pa.ListArray.from_arrays(offsets, pa.array(np.tile(["a", "b"], n)),
                                    mask=pa.array(np.arange(n) % 5 == 0))
    tags = pd.array(tags, dtype=pd.ArrowDtype(tags.type))
    return pd.DataFrame({
        "i": np.arange(n), "f": floats, "s": strings, "b": rng.random(n) > 0.5,
        "t": pd.date_range("2024-01-01", periods=n, freq="s"), "tags": tags,
        "ni": pd.array(np.where(np.arange(n) % 7 == 0, None, np.arange(n)), dtype="Int64"),
    })


def assert_same_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """assert_frame_equal, but fast on 1M object rows: values are compared as Arrow tables."""
    assert got.dtypes.equals(want.dtypes) and got.index.equals(want.index)
    assert pa.Table.from_pandas(got).equals(pa.Table.from_pandas(want))
    assert list(got["tags"].iloc[1]) == ["a", "b"] and pd.isna(got["tags"].iloc[0])


@pytest.mark.parametrize("fmt", ["arrow", "shm"])
def test_million_row_frame_round_trips(million, fmt):
    data = protocol.pack({"id": 1, "df": million}, fmt=fmt)
    assert protocol.frame_info(data).kind == ("shm" if fmt == "shm" else "msgpack")
    assert_same_frame(protocol.unpack(data)["df"], million)


def test_million_row_comparison_would_see_a_difference(million):
    changed = million.copy()
    changed.loc[999_999, "s"] = "different"
    with pytest.raises(AssertionError):
        assert_same_frame(changed, million)


# ----------------------------------------------------------------------------- bad frames

_FRAME: list[bytes] = []


def frame() -> bytes:
    if not _FRAME:
        _FRAME.append(protocol.pack({"id": 5, "df": small_df(), "x": "y"}, fmt="arrow"))
    return _FRAME[0]


@pytest.mark.parametrize("data, match", [
    (b"", "Truncated"),
    (b"DX\x01", "Truncated"),
    (b"GARBAGE-GARBAGE-GARBAGE", "Not a dspex frame"),
    (b"DX\x09M" + bytes(12), "version 9"),
    (b"DX\x01Z" + bytes(12), "Unknown frame type byte 0x5a"),
    (struct.pack(">2sBBIQ", b"DX", 1, ord("M"), 10, 5), "inconsistent"),
    (struct.pack(">2sBBIQ", b"DX", 1, ord("M"), 0, 1 << 60), "inconsistent"),
    (struct.pack(">2sBBIQ", b"DX", 1, ord("M"), 0, 100) + b"\x80", "Truncated"),
    (struct.pack(">2sBBIQ", b"DX", 1, ord("J"), 3, 3) + b"{{{", "Cannot decode a json"),
    (struct.pack(">2sBBIQ", b"DX", 1, ord("P"), 0, 3) + b"abc", "Cannot decode a pickle"),
])
def test_bad_frames_raise_protocol_error(data, match):
    with pytest.raises(ProtocolError, match=match):
        protocol.unpack(data)


def test_truncated_and_padded_frames_raise_protocol_error():
    data = frame()
    for cut in (1, 15, 16, 17, len(data) // 2, len(data) - 1):
        with pytest.raises(ProtocolError, match="Truncated"):
            protocol.unpack(data[:cut])
    with pytest.raises(ProtocolError, match="Oversized"):
        protocol.unpack(data + b"\0")


def test_length_lying_about_size_raises_protocol_error():
    data = bytearray(frame())
    header_len, body_len = struct.unpack(">IQ", data[4:16])
    for header, body in ((header_len + 1, body_len), (header_len, body_len + 64),
                         (header_len, body_len - 64), (body_len + 1, body_len)):
        data[4:16] = struct.pack(">IQ", header, body)
        with pytest.raises(ProtocolError):
            protocol.unpack(bytes(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_garbage_only_ever_raises_protocol_error(garbage):
    for data in (garbage, b"DX\x01" + garbage, b"DX\x01M" + garbage, b"DX\x01J" + garbage):
        with contextlib.suppress(ProtocolError):
            protocol.unpack(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_corrupted_headers_only_ever_raise_protocol_error(data):
    good = frame()
    header_end = 16 + struct.unpack(">I", good[4:8])[0]
    position = data.draw(st.integers(0, header_end - 1))
    value = data.draw(st.integers(0, 255))
    bad = good[:position] + bytes([value]) + good[position + 1:]
    with contextlib.suppress(ProtocolError):
        protocol.unpack(bad)


# ----------------------------------------------------------------------------- FrameReader

def test_frame_reader_reassembles_frames_from_any_chunking():
    messages = [{"id": i, "df": small_df()} if i % 2 else {"id": i} for i in range(5)]
    stream = b"".join(protocol.pack(m) for m in messages)
    for size in (1, 7, 64, len(stream)):
        reader = protocol.FrameReader()
        got = []
        for start in range(0, len(stream), size):
            got += reader.feed(stream[start:start + size])
        assert [m["id"] for m in got] == list(range(5)) and reader.buffered == 0
        pd.testing.assert_frame_equal(got[1]["df"], small_df())


def test_frame_reader_skips_an_undecodable_frame_and_keeps_the_others():
    bad = struct.pack(">2sBBIQ", b"DX", 1, ord("J"), 3, 3) + b"{{{"
    reader = protocol.FrameReader()
    with pytest.raises(ProtocolError):
        reader.feed(protocol.pack({"id": 1}) + bad + protocol.pack({"id": 2}))
    assert reader.feed(b"") == [{"id": 1}, {"id": 2}]


def test_frame_reader_stays_broken_after_garbage_until_reset():
    reader = protocol.FrameReader()
    with pytest.raises(ProtocolError, match="Not a dspex frame"):
        reader.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ProtocolError, match="out of step"):
        reader.feed(protocol.pack({"id": 1}))
    reader.reset()
    assert reader.feed(protocol.pack({"id": 1})) == [{"id": 1}]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_frame_reader_garbage_only_ever_raises_protocol_error(chunks):
    reader = protocol.FrameReader()
    for chunk in chunks:
        try:
            reader.feed(b"DX" + chunk)
        except ProtocolError:
            reader.reset()


# ----------------------------------------------------------------------------- error frames

class Unpicklable(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}/{b}")


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_error_frame_carries_type_message_and_traceback():
    reply = protocol.unpack(protocol.pack(protocol.error_message(3, raised(KeyError("k")))))
    assert protocol.is_error(reply) and reply["id"] == 3
    assert reply["error"]["type"] == "KeyError" and "in raised" in reply["error"]["traceback"]
    with pytest.raises(RemoteError) as info:
        protocol.raise_remote(reply)
    err = info.value
    assert err.remote_type == "KeyError" and "KeyError" in str(err)
    assert isinstance(err.__cause__, KeyError)
    assert isinstance(err.__cause__.__cause__, protocol.RemoteTraceback)
    assert "in raised" in "".join(traceback.format_exception(err))


def test_dspex_errors_are_re_raised_as_themselves():
    exc = raised(ValidationError([("question", "missing")]))
    reply = protocol.unpack(protocol.pack(protocol.error_message(1, exc)))
    with pytest.raises(ValidationError, match="question: missing") as info:
        protocol.raise_remote(reply)
    assert info.value.problems == [("question", "missing")]
    assert "raise exc" in info.value.remote_traceback


def test_unpicklable_exception_is_reconstructed():
    reply = protocol.error_message(1, raised(Unpicklable(1, 2)))
    assert reply["error"]["pickled"] is None
    with pytest.raises(RemoteError, match="Unpicklable raised in worker pid") as info:
        protocol.raise_remote(protocol.unpack(protocol.pack(reply)))
    cause = info.value.__cause__
    assert type(cause).__name__ == "Unpicklable" and str(cause) == "1/2"


def test_raise_remote_refuses_a_normal_message():
    with pytest.raises(ProtocolError, match="Expected an error message"):
        protocol.raise_remote({"id": 1, "status": "ok"})

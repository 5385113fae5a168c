"""The wire protocol in one process: formats, framing errors, shared memory, error frames."""

from __future__ import annotations

import contextlib
import os
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
    """Segments made by this process must all be gone (other test runs may share /dev/shm)."""
    before = set(shm.list_segments(pid=os.getpid()))
    yield
    leaked = set(shm.list_segments(pid=os.getpid())) - before
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


_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
            | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20))
_values = st.recursive(_scalars, lambda inner: (
    st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5) | st.integers(-5, 5), inner, max_size=4)),
    max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(_values)
def test_any_plain_value_round_trips_exactly(value):
    for fmt in (None, "msgpack", "pickle"):
        got = protocol.unpack(protocol.pack({"id": 1, "v": value}, fmt))
        assert got == {"id": 1, "v": value} and _same_types(got["v"], value)


def _same_types(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return all(_same_types(a[k], b[k]) for k in b)
    return True


def test_integers_beyond_64_bits_travel_as_attachments():
    assert protocol.unpack(protocol.pack({"n": 2**70})) == {"n": 2**70}
    with pytest.raises(TypeError, match=r"message\['n'\] = int with fmt='msgpack'"):
        protocol.pack({"n": 2**70}, fmt="msgpack")


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


def _dtype_zoo() -> dict[str, pd.DataFrame]:
    import datetime as dt
    import decimal

    attrs = pd.DataFrame({"a": [1]})
    attrs.attrs["source"] = "survey"
    return {
        "int column names": pd.DataFrame({0: [1, 2], 1: ["a", "b"]}),
        "multiindex columns": pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples(
            [("a", "x"), ("a", "y")])),
        "multiindex": pd.DataFrame({"v": [1, 2]}, index=pd.MultiIndex.from_tuples(
            [("a", 1), ("b", 2)], names=["k", "n"])),
        "categorical": pd.DataFrame({"c": pd.Categorical(["a", "b", "a"])}),
        "tz timestamps": pd.DataFrame({"t": pd.date_range("2024", periods=3, tz="Europe/Paris")}),
        "timedelta": pd.DataFrame({"d": pd.to_timedelta([1, 2, 3], unit="s")}),
        "decimal": pd.DataFrame({"d": [decimal.Decimal("1.5"), None]}),
        "bytes": pd.DataFrame({"b": [b"x", None]}),
        "date": pd.DataFrame({"d": [dt.date(2024, 1, 1), None]}),
        "nullable": pd.DataFrame({"b": pd.array([True, None], dtype="boolean"),
                                  "i": pd.array([1, None], dtype="Int64")}),
        "narrow numbers": pd.DataFrame({"f": np.array([1.5], dtype=np.float32),
                                        "u": np.array([1], dtype=np.uint64)}),
        "object strings": pd.DataFrame({"s": pd.Series(["a", None], dtype=object)}),
        "dicts": pd.DataFrame({"m": [{"k": 1}, {"k": 2}]}),
        "empty": pd.DataFrame(),
        "no rows": pd.DataFrame({"a": pd.Series([], dtype="int64")}),
        "named range index": pd.DataFrame({"a": [1, 2]}, index=pd.RangeIndex(2, name="r")),
        "stepped range index": pd.DataFrame({"a": [1, 2]}, index=pd.RangeIndex(10, 14, 2)),
        "datetime index with freq": pd.DataFrame({"a": [1, 2]},
                                                 index=pd.date_range("2024", periods=2)),
        "duplicate column names": pd.DataFrame([[1, 2]], columns=["a", "a"]),
        "attrs": attrs,
    }


@pytest.mark.parametrize("name", list(_dtype_zoo()))
def test_dataframes_of_every_kind_round_trip_exactly(name):
    df = _dtype_zoo()[name]
    got = protocol.unpack(protocol.pack({"df": df, "s": df.iloc[:, 0] if df.shape[1] else 0}))
    pd.testing.assert_frame_equal(got["df"], df)
    assert got["df"].attrs == df.attrs
    if df.shape[1]:
        pd.testing.assert_series_equal(got["s"], df.iloc[:, 0])


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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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


def test_frame_reader_grows_big_frames_as_bytes_arrive(monkeypatch):
    monkeypatch.setattr(protocol, "_PREALLOC", 100)    # every frame here counts as "big"
    data = protocol.pack({"id": 1, "df": small_df()})
    reader = protocol.FrameReader()
    assert reader.feed(data[:50]) == [] and reader.buffered == 50
    pd.testing.assert_frame_equal(reader.feed(data[50:])[0]["df"], small_df())
    lying = struct.pack(">2sBBIQ", b"DX", 1, ord("M"), 0, 3 << 30)   # announces 3 GiB
    assert reader.feed(lying + b"abc") == [] and reader.buffered == 19


def test_recv_grows_big_frames_from_a_socket(monkeypatch):
    import socket

    monkeypatch.setattr(protocol, "_PREALLOC", 100)
    left, right = socket.socketpair()
    with left, right:
        protocol.send(left, {"id": 1, "df": small_df()}, fmt="arrow")
        pd.testing.assert_frame_equal(protocol.recv(right, timeout=5)["df"], small_df())
        left.sendall(struct.pack(">2sBBIQ", b"DX", 1, ord("M"), 0, 3 << 30) + b"abc")
        left.shutdown(socket.SHUT_WR)
        with pytest.raises(ProtocolError, match="Truncated frame: the peer closed after 19"):
            protocol.recv(right, timeout=5)


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


# ----------------------------------------------------------------------------- transports

def test_send_never_uses_shared_memory_over_tcp(monkeypatch):
    import socket

    monkeypatch.setattr(protocol, "SHM_THRESHOLD", 1)
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    try:
        protocol.send(client, {"id": 1, "df": small_df()})
        client.shutdown(socket.SHUT_WR)
        raw = b""
        while chunk := peer.recv(65536):
            raw += chunk
        assert protocol.frame_info(raw).kind == "msgpack"
        pd.testing.assert_frame_equal(protocol.unpack(raw)["df"], small_df())
    finally:
        for s in (client, peer, server):
            s.close()


def test_send_and_recv_over_binary_files():
    read_fd, write_fd = os.pipe()
    with open(write_fd, "wb", buffering=0) as writer, open(read_fd, "rb", buffering=0) as reader:
        protocol.send(writer, {"id": 1, "x": (1, 2)})
        protocol.send(writer, {"id": 2, "df": small_df()}, fmt="shm")
        assert protocol.recv(reader) == {"id": 1, "x": (1, 2)}
        pd.testing.assert_frame_equal(protocol.recv(reader)["df"], small_df())
        writer.close()
        with pytest.raises(EOFError):
            protocol.recv(reader)


def test_failed_send_releases_its_shared_memory():
    class Broken:
        def send_bytes(self, data):
            raise BrokenPipeError("the worker is gone")

    with pytest.raises(BrokenPipeError):
        protocol.send(Broken(), {"df": small_df()}, fmt="shm")

"""DataFrame <-> Arrow, IPC, splitting, shared-memory segments, value payloads, exceptions."""

from __future__ import annotations

import multiprocessing
import os
import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dspex_lab.errors import DataError, RemoteError
from dspex_lab.exchange import (
    exceptions,
    ipc_to_table,
    list_segments,
    objects,
    read_segment,
    shm,
    split,
    sweep_segments,
    table_to_ipc,
    to_arrow,
    to_pandas,
    unlink_segment,
    write_segment,
)


class StreamOnly:
    """Something that only speaks the Arrow C stream interface (like polars or duckdb)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


def test_importing_the_wire_layers_does_not_import_pandas():
    import subprocess
    import sys

    code = ("import sys, dspex_lab.exchange, dspex_lab.exchange.objects, "
            "dspex_lab.exchange.shm, dspex_lab.exchange.exceptions; "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'psutil') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- to_arrow

def test_range_index_is_metadata_only_and_other_indexes_are_kept():
    plain = to_arrow(pd.DataFrame({"x": [1, 2]}))
    assert plain.column_names == ["x"]
    indexed = to_arrow(pd.DataFrame({"x": [1, 2]}, index=pd.Index(["a", "b"], name="key")))
    assert indexed.column_names == ["x", "key"]
    back = to_pandas(indexed, arrow_dtypes=False)
    assert back.index.tolist() == ["a", "b"] and back.index.name == "key"


@pytest.mark.parametrize("data", [
    pa.table({"q": ["a", "b"], "n": [1, 2]}),
    pa.record_batch({"q": ["a", "b"], "n": [1, 2]}),
    pa.RecordBatchReader.from_batches(pa.schema({"q": pa.string(), "n": pa.int64()}),
                                      [pa.record_batch({"q": ["a", "b"], "n": [1, 2]})]),
    StreamOnly(pa.table({"q": ["a", "b"], "n": [1, 2]})),
    [{"q": "a", "n": 1}, {"q": "b", "n": 2}],
    {"q": ["a", "b"], "n": [1, 2]},
    pd.DataFrame({"q": ["a", "b"], "n": [1, 2]}),
])
def test_to_arrow_accepts_every_table_like(data):
    table = to_arrow(data)
    assert table.select(["q", "n"]).to_pydict() == {"q": ["a", "b"], "n": [1, 2]}


def test_rows_with_missing_keys_become_nulls_and_columns_select():
    table = to_arrow([{"q": "a"}, {"q": "b", "n": 2}])
    assert table.to_pydict() == {"q": ["a", "b"], "n": [None, 2]}
    assert to_arrow([{"q": "a", "n": 1}], columns=["n"]).column_names == ["n"]
    assert to_arrow(pd.DataFrame({"a": [1], "b": [2]}), columns=["b"]).column_names == ["b"]


def test_lists_of_one_type_stay_arrow_lists_and_dicts_are_pickled_not_structs():
    meta = [{"k": 1, "v": "x"}, None, {"other": 2}]
    table = to_arrow(pd.DataFrame({"tags": [["a", "b"], None, []], "meta": meta}))
    assert table.schema.field("tags").type == pa.list_(pa.string())
    assert table.schema.field("meta").type.extension_name == "dspex.pickle"
    assert table.column("meta").to_pylist() == meta  # no struct: no keys added
    back = to_pandas(table)
    assert back["meta"].dtype == object and back["meta"].tolist() == meta


def test_object_columns_arrow_cannot_hold_exactly_are_pickled_values():
    import enum

    class Color(enum.StrEnum):  # a str subclass: Arrow would make it a plain str
        RED = "red"

    df = pd.DataFrame({"fine": [1, 2], "mixed": [1, "a"],
                       "enum": pd.Series([Color.RED, None], dtype=object),
                       "ints": [[1, 2], [1.5]], "s": ["x", None]})
    table = to_arrow(df)
    pickled = [f.name for f in table.schema if isinstance(f.type, pa.ExtensionType)]
    assert pickled == ["mixed", "enum", "ints"]
    assert pa.types.is_large_string(table.column("s").type)  # pandas 3: str dtype
    rows = table.to_pylist()
    assert [type(r["mixed"]) for r in rows] == [int, str]
    assert rows[0]["enum"] is Color.RED and rows[1]["enum"] is None
    assert [type(v) for v in rows[0]["ints"]] == [int, int]
    for arrow_dtypes in (True, False):
        back = to_pandas(ipc_to_table(table_to_ipc(table)), arrow_dtypes=arrow_dtypes)
        assert back["mixed"].tolist() == [1, "a"] and back["enum"][0] is Color.RED
        assert back["ints"].tolist() == [[1, 2], [1.5]] and back["mixed"].dtype == object
    pd.testing.assert_frame_equal(to_pandas(table, arrow_dtypes=False), df)
    assert [type(v) for v in to_arrow([{"n": 1}, {"n": "two"}]).column("n").to_pylist()] == \
        [int, str]


@pytest.mark.parametrize("data, match", [
    (42, "Cannot turn a int into an Arrow table"),
    ("text", "Cannot turn a str"),
    (None, "Cannot turn a NoneType"),
    ({"a": [1, 2], "b": [1]}, "same length; got a=2, b=1"),
    ({1: [1]}, "Column names must be strings"),
    (pd.DataFrame({"a": [1]}), r"Column\(s\) \['zz'\] not found"),
])
def test_to_arrow_errors_are_sentences(data, match):
    with pytest.raises(DataError, match=match) as info:
        to_arrow(data, columns=["zz"] if isinstance(data, pd.DataFrame) else None)
    assert isinstance(info.value, TypeError | ValueError)  # what they were before


def test_duplicate_column_names_are_a_clear_error():
    with pytest.raises(DataError, match="'a' appear more than once"):
        to_arrow(pd.DataFrame([[1, 2]], columns=["a", "a"]))


# ----------------------------------------------------------------------------- to_pandas

def test_to_pandas_gives_arrow_backed_dtypes():
    table = pa.table({"s": ["a", None], "n": [1, None], "f": [0.5, 1.5],
                      "tags": [["x"], None],
                      "cat": pa.array(["u", "v"]).dictionary_encode()})
    df = to_pandas(table)
    assert df["s"].dtype == pd.StringDtype("pyarrow", na_value=np.nan)
    assert df["n"].dtype == pd.ArrowDtype(pa.int64()) and df["n"].isna().tolist() == [False, True]
    assert df["tags"].dtype == pd.ArrowDtype(pa.list_(pa.string()))
    assert isinstance(df["cat"].dtype, pd.CategoricalDtype)


def test_to_pandas_without_arrow_dtypes_restores_the_original_frame():
    tags = pd.array([["a"], None], dtype=pd.ArrowDtype(pa.list_(pa.string())))
    original = pd.DataFrame({"n": [1, 2], "s": ["x", None], "tags": tags,
                             "t": pd.to_datetime(["2024-01-01", None])}, index=[7, 9])
    back = to_pandas(to_arrow(original), arrow_dtypes=False)
    pd.testing.assert_frame_equal(back, original)


def test_to_pandas_accepts_a_record_batch_and_refuses_other_things():
    assert to_pandas(pa.record_batch({"x": [1]}))["x"].tolist() == [1]
    with pytest.raises(TypeError, match="needs a pyarrow Table"):
        to_pandas(pd.DataFrame({"x": [1]}))


# ----------------------------------------------------------------------------- IPC, split

def test_ipc_round_trip_is_zero_copy():
    table = pa.table({"x": np.arange(1000), "s": [str(i) for i in range(1000)]})
    buf = table_to_ipc(table)
    for source in (buf, buf.to_pybytes(), memoryview(buf)):
        assert ipc_to_table(source).equals(table)
    data = ipc_to_table(buf).column("x").chunks[0].buffers()[1]
    assert buf.address <= data.address < buf.address + buf.size


def test_ipc_garbage_is_a_value_error():
    with pytest.raises(ValueError, match="not a valid Arrow IPC stream"):
        ipc_to_table(b"definitely not arrow")


def test_split_cuts_zero_copy_slices():
    table = pa.table({"x": np.arange(10)})
    parts = split(table, 4)
    assert [p.num_rows for p in parts] == [4, 4, 2]
    assert pa.concat_tables(parts).equals(table)
    assert parts[1].column("x").chunks[0].buffers()[1].address == \
        table.column("x").chunks[0].buffers()[1].address
    assert [p.num_rows for p in split(pd.DataFrame({"x": range(3)}), 2)] == [2, 1]
    assert split(table.slice(0, 0), 3) == []
    with pytest.raises(ValueError, match="positive integer"):
        split(table, 0)


# ----------------------------------------------------------------------------- shared memory

def test_segment_round_trip_unlinks_on_read():
    name = write_segment([b"hello ", memoryview(b"world")])
    assert name in list_segments(pid=os.getpid())
    assert bytes(read_segment(name, 11)) == b"hello world"
    assert name not in list_segments()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_segment(name, 11)


def test_short_segment_is_refused_and_still_unlinked():
    name = write_segment([b"abc"])
    with pytest.raises(ValueError, match="holds 3 bytes but the frame says 10"):
        read_segment(name, 10)
    assert name not in list_segments()


def test_read_view_is_writable_without_touching_the_segment():
    name = write_segment([b"abcd"])
    view = read_segment(name, 4)
    view[0:1] = b"X"
    assert bytes(view) == b"Xbcd"


@pytest.mark.parametrize("name", ["../etc/passwd", "dspex-1-zz", "/dev/shm/x", None])
def test_only_dspex_segment_names_are_accepted(name):
    with pytest.raises(ValueError, match="not a dspex shared-memory segment name"):
        read_segment(name, 1)


def test_failed_write_leaves_no_segment():
    name = shm.new_segment_name()
    with pytest.raises(RuntimeError), shm.create_segment(name, 10) as file:
        file.write(b"part")
        raise RuntimeError("writer failed")
    assert name not in list_segments()


def test_sweep_removes_segments_of_dead_processes_only():
    process = multiprocessing.get_context("fork").Process(target=os.getpid)
    process.start()
    process.join()
    orphan = f"dspex-{process.pid}-{'0' * 16}"
    (shm.SHM_DIR / orphan).write_bytes(b"x")
    mine = write_segment([b"y"])
    assert sweep_segments() >= 1
    assert orphan not in list_segments() and mine in list_segments()
    unlink_segment(mine)


# ----------------------------------------------------------------------------- payloads

def test_numpy_buffers_travel_out_of_band_and_arrive_writable():
    array = np.arange(100_000, dtype=np.float64)
    payload, extra = objects.encode({"embedding": array})
    assert payload.kind == "pickle" and payload.size < 1000
    assert [b.nbytes for b in extra] == [array.nbytes]
    target = bytearray(payload.size)
    payload.write(memoryview(target))
    back = objects.decode("pickle", memoryview(target), None, [memoryview(bytes(extra[0]))])
    np.testing.assert_array_equal(back["embedding"], array)
    back["embedding"][0] = -1.0


def test_tables_become_arrow_payloads_and_unpicklables_a_type_error():
    payload, extra = objects.encode(pd.DataFrame({"x": [1]}))
    assert payload.kind == "arrow" and payload.meta == {"as": "pandas"} and extra == []
    with pytest.raises(TypeError, match="cloudpickle failed"):
        objects.encode(threading.Lock())


def test_frames_with_objects_travel_as_arrow_and_other_labels_exactly_by_pickle():
    def round_trip(obj):
        payload, extra = objects.encode(obj)
        target = bytearray(payload.size)
        payload.write(memoryview(target))
        return payload.kind, objects.decode(payload.kind, memoryview(target), payload.meta,
                                            extra)

    objs = pd.DataFrame({"d": [{"a": 1}, {"b": [2]}], "mixed": [1, "x"]})
    kind, back = round_trip(objs)
    assert kind == "arrow" and back.equals(objs) and back["d"].tolist() == objs["d"].tolist()
    labels = pd.DataFrame({0: ["a"], "b": [1]})
    kind, back = round_trip(labels)
    assert kind == "pickle" and back.columns.tolist() == [0, "b"]


# ----------------------------------------------------------------------------- exceptions

def test_exception_of_an_unknown_class_gets_a_stand_in():
    data = {"type": "Boom", "module": "not_imported_here", "message": "it broke",
            "traceback": "Traceback...\nBoom: it broke\n", "pid": 1, "pickled": None}
    err = exceptions.rebuild(data)
    assert isinstance(err, RemoteError) and err.remote_type == "not_imported_here.Boom"
    assert type(err.__cause__).__name__ == "Boom" and str(err.__cause__) == "it broke"
    assert "Boom: it broke" in str(err.__cause__.__cause__)


# ----------------------------------------------------------------------------- values

@pytest.mark.parametrize("values, arrow_type", [
    (["a", None], pa.string()),
    ([1, None, 2**63 - 1], pa.int64()),
    ([0.5, float("nan")], pa.float64()),
    ([True, None], pa.bool_()),
    ([["a"], [], None, ["b", None]], pa.list_(pa.string())),
    ([None, None], pa.null()),
])
def test_values_arrow_holds_exactly_stay_typed_arrow(values, arrow_type):
    from dspex_lab.exchange.values import to_arrow_values

    array = to_arrow_values(values)
    assert array.type == arrow_type
    back = array.to_pylist()
    assert [type(v) for v in back] == [type(v) for v in values]
    assert str(back) == str(values)  # NaN included


@pytest.mark.parametrize("values", [
    [1, 2.5], [True, 1], [2**64], [{"a": 1}, {"b": 2}], [(1, 2)], [[1, "a"]], [[[1]]],
    [[1], [1.5]], [np.int64(3)], [pd.Timestamp("2024-01-01")],
])
def test_values_arrow_would_change_are_pickled_and_come_back_as_they_were(values):
    from dspex_lab.exchange.values import is_pickled, to_arrow_values

    array = to_arrow_values(values)
    assert is_pickled(array.type)
    back = ipc_to_table(table_to_ipc(pa.table({"v": array}))).column("v").to_pylist()
    assert back == values and [type(v) for v in back] == [type(v) for v in values]


def test_unify_pickles_a_column_typed_differently_in_two_tables_and_keeps_the_rest():
    from dspex_lab.exchange.values import is_pickled, to_arrow_values, unify

    a = pa.table({"x": to_arrow_values(["s"]), "n": [1], "tags": to_arrow_values([[]])})
    b = pa.table({"x": to_arrow_values([2]), "n": [2], "tags": to_arrow_values([["t"]])})
    c = pa.table({"x": pa.nulls(1), "n": [3]})
    unified = unify([a, b, c])
    assert all(is_pickled(t.schema.field("x").type) for t in unified)
    assert [t.schema.field("n").type for t in unified] == [pa.int64()] * 3  # left alone
    table = pa.concat_tables(unified, promote_options="permissive")
    assert table.to_pydict() == {"x": ["s", 2, None], "n": [1, 2, 3], "tags": [[], ["t"], None]}
    assert table.schema.field("tags").type == pa.list_(pa.string())

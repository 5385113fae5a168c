"""Pickled cells read back from a damaged spill file or Arrow stream: a clear ``DataError``
from the bounded check, never a crash or a runaway allocation in ``pickle.loads``."""

import pickle
import resource

import pyarrow as pa
import pytest

from dspex_lab.batch.spill import ROW, Spill
from dspex_lab.errors import DataError
from dspex_lab.exchange.arrow import ipc_to_table, table_to_ipc
from dspex_lab.exchange.values import PICKLED, pickled_array

MEMO_BOMB = b"\x80\x04r\xff\xff\xff\xff."  # LONG_BINPUT 2**32-1: a 64 GiB memo in pickle.loads
TRUNCATED = pickle.dumps({"answer": ["a", "b"] * 10}, 5)[:-7]


def _column(blobs):
    return pa.ExtensionArray.from_storage(PICKLED, pa.array(blobs, pa.large_binary()))


def _spilled(tmp_path, blob):
    Spill.open(tmp_path, run_id="r1", rows=2, resume=False, info={})
    table = pa.table({ROW: pa.array([0, 1], pa.int64()),
                      "value": pa.concat_arrays([pickled_array([(1, 2)]), _column([blob])])})
    with pa.ipc.new_file(str(tmp_path / "part-000001.arrow"), table.schema) as writer:
        writer.write_table(table)  # a part whose second pickle was damaged on disk
    return Spill.open(tmp_path, run_id="r1", rows=2, resume=True, info={}).load()


@pytest.mark.parametrize("blob", [MEMO_BOMB, TRUNCATED, b"\xff\x00garbage"],
                         ids=["memo-bomb", "truncated", "garbage"])
def test_a_corrupt_pickled_cell_in_a_spill_file_is_a_clear_error(tmp_path, blob):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    table = _spilled(tmp_path, blob)
    column = table.column("value")
    assert column[0].as_py() == (1, 2)                      # good cells still read
    with pytest.raises(DataError, match=r"pickled column \(dspex.pickle\) is corrupt.*"
                                        r"resume=False"):
        column.to_pylist()
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200


def test_a_corrupt_pickled_cell_in_an_ipc_stream_is_a_clear_error():
    table = ipc_to_table(table_to_ipc(pa.table({"value": _column([MEMO_BOMB])})))
    with pytest.raises(DataError, match="corrupt"):
        table.to_pylist()

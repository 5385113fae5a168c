"""The spill: results on disk as they arrive, read back on resume."""

import pyarrow as pa
import pytest

from dspex_lab.batch.spill import ROW, Spill
from dspex_lab.errors import ConfigurationError


def _part(rows, answers):
    return pa.table({"answer": answers, "error": pa.nulls(len(rows), pa.string()),
                     ROW: pa.array(rows, pa.int64())})


def test_parts_round_trip_and_the_last_result_for_a_row_wins(tmp_path):
    spill = Spill.open(tmp_path / "s", "run1", rows=4, resume=False, info={"program": "p"})
    spill.write(_part([0, 1], ["a", "b"]))
    spill.write(_part([1, 3], ["B", "d"]))
    again = Spill.open(tmp_path / "s", "run1", rows=4, resume=True, info={})
    table = again.load()
    got = dict(zip(table.column(ROW).to_pylist(), table.column("answer").to_pylist(),
                   strict=True))
    assert got == {0: "a", 1: "B", 3: "d"}


def test_without_resume_earlier_parts_are_dropped(tmp_path):
    Spill.open(tmp_path, "run1", 2, False, {}).write(_part([0], ["a"]))
    assert Spill.open(tmp_path, "run1", 2, False, {}).load() is None


def test_resuming_another_runs_spill_is_refused(tmp_path):
    Spill.open(tmp_path, "run1", 2, False, {}).write(_part([0], ["a"]))
    with pytest.raises(ConfigurationError, match="belongs to another run"):
        Spill.open(tmp_path, "run2", 2, True, {})


def test_a_torn_part_is_skipped(tmp_path):
    spill = Spill.open(tmp_path, "run1", 2, False, {})
    spill.write(_part([0], ["a"]))
    (tmp_path / "part-999999.arrow").write_bytes(b"not arrow")
    assert spill.load().num_rows == 1


def test_finish_records_the_status_and_false_means_no_spill(tmp_path):
    spill = Spill.open(tmp_path, "run1", 1, False, {})
    spill.finish("finished", {"rows": 1})
    assert '"status": "finished"' in (tmp_path / "manifest.json").read_text()
    assert Spill.open(False, "run1", 1, False, {}) is None

"""Mapping input fields to columns and checking rows, before any LM call."""

import pandas as pd
import pyarrow as pa
import pytest

from dspex_lab.batch.inputs import prepare_inputs, row_keys
from dspex_lab.cache import cache_key
from dspex_lab.errors import ValidationError
from dspex_lab.programs import as_program

PROG = as_program("question, context -> answer")


def test_missing_column_names_the_field_lists_columns_and_suggests_columns():
    df = pd.DataFrame({"q": ["hi"], "context": ["c"]})
    with pytest.raises(ValidationError) as info:
        prepare_inputs(PROG, df)
    text = str(info.value)
    assert "question" in text and "'q', 'context'" in text and "columns={'question'" in text
    assert [field for field, _ in info.value.problems] == ["question"]


def test_columns_maps_fields_and_keeps_the_source_frame():
    df = pd.DataFrame({"q": ["a", "b"], "ctx": ["x", "y"], "other": [1, 2]})
    batch = prepare_inputs(PROG, df, columns={"question": "q", "context": "ctx"})
    assert batch.table.column_names == ["question", "context"]
    assert batch.table.column("question").to_pylist() == ["a", "b"]
    assert batch.source is df and batch.mapping == {"question": "q", "context": "ctx"}


def test_a_mapping_to_a_missing_column_or_of_an_unknown_field_is_an_error():
    df = pd.DataFrame({"question": ["a"], "context": ["c"]})
    with pytest.raises(ValidationError, match="no such column"):
        prepare_inputs(PROG, df, columns={"question": "nope"})
    with pytest.raises(ValidationError, match="not an input field"):
        prepare_inputs(PROG, df, columns={"answer": "question"})


@pytest.mark.parametrize("data", [
    [{"question": "a", "context": "x"}, {"question": "b", "context": "y"}],
    pa.table({"question": ["a", "b"], "context": ["x", "y"], "extra": [1, 2]}),
    {"question": ["a", "b"], "context": ["x", "y"]},
])
def test_lists_of_dicts_arrow_tables_and_dicts_of_columns(data):
    batch = prepare_inputs(PROG, data)
    assert batch.num_rows == 2
    assert batch.table.column("context").to_pylist() == ["x", "y"]


def test_row_keys_match_single_calls_and_flag_rows_that_do_not_fit():
    table = pa.table({"question": ["a", None], "context": ["x", "y"]})
    keys, invalid = row_keys(PROG, table, "lm", adapter=None, temperature=None)
    assert keys[0] == cache_key(PROG.key, {"question": "a", "context": "x"}, "lm",
                                adapter=None, temperature=None)
    assert keys[1] is None and list(invalid) == [1]
    assert invalid[1].startswith("ValidationError") and "question" in invalid[1]
    assert len(keys) == 2 and keys.digests.nbytes == 64  # 32 bytes a row


def test_ordered_chains_parts_in_row_order_and_sorts_the_others():
    from dspex_lab.batch.frame import ordered, result_part

    first = result_part([0, 1], {"answer": ["a", "b"]}, errors=[None, None])
    second = result_part([2, 3], {"answer": ["c", "d"]}, errors=[None, "x"])
    chained = ordered([second, first], ("answer",), 4)  # finished out of order
    assert chained.column("answer").to_pylist() == ["a", "b", "c", "d"]
    # consecutive parts are chained, not copied: the answers are the parts' own buffers
    assert chained.column("answer").chunks[0].buffers()[2].address == \
        first.column("answer").chunks[0].buffers()[2].address
    mixed = ordered([result_part([1, 3], {"answer": ["b", "d"]}, errors=[None, None]),
                     result_part([0, 2], {"answer": ["a", "c"]}, errors=[None, None])],
                    ("answer",), 4)
    assert mixed.column("answer").to_pylist() == ["a", "b", "c", "d"]
    assert mixed.column("error").to_pylist() == [None] * 4


def test_a_module_without_signature_reads_its_forward_parameters():
    import dspy

    class Echo(dspy.Module):
        def forward(self, text, n=1):
            return dspy.Prediction(out=text * n)

    batch = prepare_inputs(as_program(Echo()), pd.DataFrame({"text": ["a"], "n": [2],
                                                             "z": [0]}))
    assert batch.table.column_names == ["text", "n"]

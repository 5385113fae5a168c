"""``run`` gives back what DSPy returned: the values and types of ``module(**row)``, row by row.

Each test runs the same program through plain DSPy and through ``dspex_lab.run`` (embedded
LM, an in-process pool; real worker processes: tests/integration/test_batch_types_pool.py),
then compares every value and its ``type()``; re-runs from the result cache and resumed runs
from the spill must give the same again.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import enum

import dspy
import pandas as pd
import pydantic
import pytest

import dspex_lab.batch as batch
from dspex_lab.cache import ResultCache
from dspex_lab.errors import DataError, ValidationError
from dspex_lab.lm.config import EMBEDDED_MODEL
from dspex_lab.testing import fresh_run_state, make_lm, make_spec, running_server


class Item(pydantic.BaseModel):
    name: str
    qty: int


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: float


class Typed(dspy.Signature):
    """Answer with typed values."""

    question: str = dspy.InputField()
    item: Item = dspy.OutputField()
    items: list[Item] = dspy.OutputField()
    color: Color = dspy.OutputField()
    groups: dict[str, list[str]] = dspy.OutputField()
    grid: list[list[int]] = dspy.OutputField()
    maybe: int | None = dspy.OutputField()


class Scalars(dspy.Signature):
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    n: int = dspy.OutputField()
    score: float = dspy.OutputField()
    ok: bool = dspy.OutputField()
    tags: list[str] = dspy.OutputField()


class Wrapped(dspy.Module):
    """``dspy.Predict(sig)`` behind a module of its own (its forward names the inputs)."""

    def __init__(self, sig: type) -> None:
        super().__init__()
        self.step = dspy.Predict(sig)

    def forward(self, question: str) -> dspy.Prediction:
        return self.step(question=question)


class Returns(dspy.Module):
    """A module returning Python values that no LM parses: dataclasses, None, mixed types."""

    def forward(self, question: str) -> dspy.Prediction:
        i = int(question.split()[-1])
        return dspy.Prediction(point=Point(i, i / 2), nothing=None,
                               mixed=i if i % 2 else f"n{i}", when=(i, "tuple"))


class Echo(dspy.Module):
    """Hands its inputs back, to see exactly what the worker's ``module(**row)`` received."""

    def forward(self, history, meta, tags, n, model, text):
        return dspy.Prediction(history_out=history, meta_out=meta, tags_out=tags, n_out=n,
                               model_out=model, text_out=text)


@pytest.fixture(scope="module")
def server():
    with running_server() as srv:
        yield srv


@pytest.fixture(scope="module")
def pool():
    with cf.ThreadPoolExecutor(2) as executor:
        yield executor


@pytest.fixture(autouse=True)
def fresh(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DSPEX_CACHE_DIR", str(tmp_path))
    with fresh_run_state(server):
        yield


@pytest.fixture
def spec(server):
    return make_spec(server, EMBEDDED_MODEL)


def questions(n: int = 4) -> pd.DataFrame:
    asked = ["Tell me about cats", "hello there", "Name three colors", "weather today"]
    return pd.DataFrame({"question": (asked * n)[:n]})


def go(program, data, spec, pool, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("chunk_size", 2)  # several parts: they must agree on column types
    return batch.run(program, data, lm=spec, pool=pool, **kw)


def plain(server, program, df: pd.DataFrame) -> list[dict]:
    """What plain DSPy returns for each row (same LM, same prompts)."""
    with dspy.context(lm=make_lm(server, EMBEDDED_MODEL)):
        return [dict(program(**row).items()) for row in df.to_dict("records")]


def assert_same(out: pd.DataFrame, expected: list[dict], names) -> None:
    for name in names:
        got = out[name].tolist()
        if out[name].dtype != object:  # an Arrow-backed column: None reads as pandas' NA
            got = [None if v is pd.NA else v for v in got]
        want = [row[name] for row in expected]
        assert got == want, name
        assert [deep_types(v) for v in got] == [deep_types(v) for v in want], name


def deep_types(value):
    """The type of a value and of everything inside it."""
    if isinstance(value, list | tuple):
        return type(value), [deep_types(v) for v in value]
    if isinstance(value, dict):
        return type(value), {k: deep_types(v) for k, v in value.items()}
    return type(value)


TYPED = ["item", "items", "color", "groups", "grid", "maybe"]


@pytest.fixture
def typed_run(server, spec, pool):
    df = questions()
    expected = plain(server, dspy.Predict(Typed), df)
    return df, expected, go(Wrapped(Typed), df, spec, pool)


@pytest.mark.parametrize("name", TYPED)
def test_each_typed_output_is_what_dspy_returned(typed_run, name):
    _, expected, out = typed_run
    assert out["error"].isna().all(), out["error"].tolist()
    assert_same(out, expected, [name])
    # real objects, not text; an int (of 'int | None') stays an Arrow int column
    assert str(out[name].dtype) == ("int64[pyarrow]" if name == "maybe" else "object")


def test_dicts_keep_their_own_keys_and_models_are_not_text(typed_run):
    _, expected, out = typed_run
    assert all(isinstance(m, Item) for items in out["items"] for m in items)
    assert [set(g) for g in out["groups"]] == [set(row["groups"]) for row in expected]
    assert len({frozenset(g) for g in out["groups"]}) > 1  # rows differ: no merged keys
    assert all(isinstance(c, Color) for c in out["color"])


def test_scalars_and_lists_of_strings_stay_arrow_backed(server, spec, pool):
    df = questions()
    expected = plain(server, dspy.Predict(Scalars), df)
    out = go(Wrapped(Scalars), df, spec, pool)
    assert_same(out, expected, ["answer", "n", "score", "ok", "tags"])
    dtypes = {name: str(out[name].dtype) for name in ["answer", "n", "score", "ok", "tags"]}
    assert dtypes == {"answer": "str", "n": "int64[pyarrow]", "score": "double[pyarrow]",
                      "ok": "bool[pyarrow]", "tags": "list<item: string>[pyarrow]"}


def test_python_values_a_module_returns_come_back_as_they_are(server, spec, pool):
    df = pd.DataFrame({"question": [f"row {i}" for i in range(5)]})
    expected = plain(server, Returns(), df)
    out = go(Returns(), df, spec, pool, chunk_size=1)  # 'mixed': int in some parts, str in others
    assert_same(out, expected, ["point", "nothing", "mixed", "when"])
    assert [type(v) for v in out["mixed"]] == [str, int, str, int, str]


def test_a_cache_rerun_gives_the_same_values_and_types(server, spec, pool):
    df = questions()
    first = go(Wrapped(Typed), df, spec, pool)
    requests = server.stats()["requests"]
    again = go(Wrapped(Typed), df, spec, pool)
    assert again["cached"].all() and server.stats()["requests"] == requests
    assert_same(again, first.to_dict("records"), TYPED)


def test_a_cache_rerun_from_disk_gives_the_same_values_and_types(server, spec, pool, tmp_path):
    from dspex_lab.cache import set_cache

    df = questions()
    set_cache(ResultCache(tmp_path / "results.sqlite"))
    first = go(Wrapped(Typed), df, spec, pool)
    set_cache(ResultCache(tmp_path / "results.sqlite"))  # a new kernel reads the file
    again = go(Wrapped(Typed), df, spec, pool)
    assert again["cached"].all()
    assert_same(again, first.to_dict("records"), TYPED)


def test_resume_from_the_spill_gives_the_same_values_and_types(server, spec, pool, tmp_path):
    df = questions()
    first = go(Wrapped(Typed), df, spec, pool, cache=False, spill=tmp_path / "spill")
    requests = server.stats()["requests"]
    again = go(Wrapped(Typed), df, spec, pool, cache=False, spill=tmp_path / "spill",
               resume=True)
    assert server.stats()["requests"] == requests  # every row came from the spill
    assert again.attrs["usage"]["resumed"] == len(df)
    assert_same(again, first.to_dict("records"), TYPED)


def test_on_part_frames_hold_the_values_too(server, spec, pool):
    parts = []
    go(Wrapped(Typed), questions(), spec, pool, on_part=parts.append)
    assert parts and all(isinstance(v, list) and isinstance(v[0], Item)
                         for part in parts for v in part["items"])


# -- inputs ------------------------------------------------------------------------------------

def object_inputs() -> pd.DataFrame:
    history = dspy.History(messages=[{"question": "hi", "answer": "hello"}])
    return pd.DataFrame({
        "history": [history, dspy.History(messages=[])],
        "meta": [{"a": 1}, {"b": [2, 3]}],                         # keys differ per row
        "tags": [["x", "y"], []],
        "n": pd.Series([1, None], dtype=object),                   # an int stays an int
        "model": [Item(name="a", qty=1), None],
        "text": pd.Series(["plain", 7], dtype=object),             # mixed types
    })


def test_input_columns_of_objects_reach_the_module_exactly(spec, pool):
    df = object_inputs()
    out = go(Echo(), df, spec, pool)
    assert out["error"].isna().all(), out["error"].tolist()
    for name in df.columns:
        echoed = out[[f"{name}_out"]].set_axis([name], axis=1)
        assert_same(echoed, df.to_dict("records"), [name])
    assert out[list(df.columns)].equals(df)  # the input columns are the data's own


def test_a_history_column_is_an_input_dspy_reads(server, spec, pool):
    sig = dspy.Signature("question: str, history: dspy.History -> answer: str")
    df = pd.DataFrame({
        "question": ["What is 2 + 2?", "And 3 + 3?"],
        "history": [dspy.History(messages=[]),
                    dspy.History(messages=[{"question": "What is 2 + 2?", "answer": "4"}])]})
    expected = plain(server, dspy.Predict(sig), df)
    out = go(dspy.Predict(sig), df, spec, pool)
    assert out["error"].isna().all(), out["error"].tolist()
    assert_same(out, expected, ["answer"])


# -- errors and column names --------------------------------------------------------------------

@pytest.mark.parametrize("data", [None, "a string", 42])
def test_data_that_is_not_a_table_is_a_data_error(data, spec, pool):
    with pytest.raises(DataError, match=r"Cannot turn a .* into an Arrow table; pass a pandas"):
        go("question -> answer", data, spec, pool)


def test_integer_column_labels_work_by_label_and_by_text(spec, pool):
    df = pd.DataFrame({0: ["What is 1 + 1?", "What is 2 + 2?"], 1: ["x", "y"]})
    by_label = go("question -> answer", df, spec, pool, columns={"question": 0})
    by_text = go("question -> answer", df, spec, pool, columns={"question": "0"})
    assert by_label["answer"].tolist() == by_text["answer"].tolist() == ["2", "4"]
    assert list(by_label.columns[:2]) == [0, 1]  # the data's own labels, unchanged


def test_duplicate_columns_are_refused_only_when_an_input_reads_them(spec, pool):
    df = pd.DataFrame([["What is 1 + 1?", "a", "b"]], columns=["question", "x", "x"])
    assert go("question -> answer", df, spec, pool)["answer"].tolist() == ["2"]
    dup = pd.DataFrame([["q1", "q2"]], columns=["question", "question"])
    with pytest.raises(ValidationError, match="2 columns named 'question'; rename or drop"):
        go("question -> answer", dup, spec, pool)


def test_columns_must_be_a_mapping(spec, pool):
    with pytest.raises(DataError, match=r"columns= maps input fields .*got a list"):
        go("question -> answer", questions(1), spec, pool, columns=["question"])


def test_a_mixed_type_column_is_accepted_for_an_untyped_program(spec, pool):
    df = pd.DataFrame({"history": [1, "two"], "meta": [None, 2.5], "tags": [[], ["t"]],
                       "n": [1, 2], "model": ["m", "m"], "text": ["a", "b"]})
    out = go(Echo(), df, spec, pool)
    assert [type(v) for v in out["history_out"]] == [int, str]
    assert out["tags_out"].tolist() == [[], ["t"]] and out["n_out"].tolist() == [1, 2]


def test_a_single_call_served_from_the_cache_has_the_same_types(spec, tmp_path):
    import dspex_lab
    from dspex_lab.cache import set_cache

    def call():
        return dspex_lab.predict(Wrapped(Typed), lm=spec, implementation="native",
                                 question="hello there")

    set_cache(ResultCache(tmp_path / "results.sqlite"))
    first = call()
    set_cache(ResultCache(tmp_path / "results.sqlite"))  # a new kernel: from the file
    again = call()
    assert again._dspex.cached and not first._dspex.cached
    assert_same(pd.DataFrame([dict(again.items())]), [dict(first.items())], TYPED)


class Locks(dspy.Module):
    """Returns a lock (which cannot be pickled) for odd rows."""

    def forward(self, question: str) -> dspy.Prediction:
        import threading

        i = int(question.split()[-1])
        return dspy.Prediction(value=threading.Lock() if i % 2 else {"i": i})


def test_an_output_that_cannot_leave_the_worker_fails_only_its_row(spec, pool):
    out = go(Locks(), pd.DataFrame({"question": [f"row {i}" for i in range(4)]}), spec, pool,
             chunk_size=4)
    assert out["value"].tolist() == [{"i": 0}, None, {"i": 2}, None]
    assert out["error"].isna().tolist() == [True, False, True, False]
    assert out["error"][1].startswith("TypeError: the output 'value' cannot leave the worker")


def test_an_input_that_cannot_be_pickled_is_a_data_error_naming_the_column(spec, pool):
    import threading

    df = pd.DataFrame({"question": pd.Series([threading.Lock()], dtype=object)})
    with pytest.raises(DataError, match="Column 'question' holds a value that cannot be pickled"):
        go(Returns(), df, spec, pool)


def test_rows_given_as_dicts_keep_their_objects_and_missing_keys_are_none(spec, pool):
    history = dspy.History(messages=[{"q": "hi"}])
    rows = [{"history": history, "meta": {"a": 1}, "tags": ["x"], "n": 1, "model": None,
             "text": "t"},
            {"meta": {"b": 2}, "tags": [], "n": None, "model": Item(name="m", qty=2),
             "text": 3}]
    out = go(Echo(), rows, spec, pool)
    assert out["error"].isna().all(), out["error"].tolist()
    assert out["history_out"].tolist() == [history, None]
    assert out["meta_out"].tolist() == [{"a": 1}, {"b": 2}]
    assert out["model_out"].tolist() == [None, Item(name="m", qty=2)]
    assert [type(v) for v in out["text_out"]] == [str, int]
    assert out["history"].tolist() == [history, None]  # the input columns hold them too

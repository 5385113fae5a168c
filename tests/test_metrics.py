"""Native metrics against hand-computed values, and their DSPy / DataFrame forms."""

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from dspex_lab.native import Metric, accuracy, exact_match, f1, normalize_answer, to_text
from dspex_lab.router import get_router


class FakeExample(dict):
    """Just enough of dspy.Example: items, inputs() and labels()."""

    def __init__(self, inputs, **fields):
        super().__init__(**fields)
        self._inputs = inputs

    def inputs(self):
        return {k: v for k, v in self.items() if k in self._inputs}

    def labels(self):
        return {k: v for k, v in self.items() if k not in self._inputs}


# -- exact_match -----------------------------------------------------------------------------

@pytest.mark.parametrize(("pred", "gold", "expected"), [
    ("Paris", "Paris", 1.0),
    ("  Paris \n", "paris", 1.0),           # trimmed, case-insensitive
    ("New   York", "new york", 1.0),        # inner whitespace folded
    ("Paris.", "Paris", 0.0),               # punctuation counts unless squad=True
    ("", "", 1.0),
    ("", "x", 0.0),
    ("Zürich", "ZÜRICH", 1.0),              # unicode case folding
    ("5", 5, 1.0),                          # numbers compare as text
    (5.0, "5", 1.0),                        # integral floats print without .0
    (None, "", 1.0),
    (float("nan"), "x", 0.0),
])
def test_exact_match_values(pred, gold, expected):
    assert exact_match(pred, gold) == expected


def test_exact_match_options():
    assert exact_match("Paris", "paris", case_sensitive=True) == 0.0
    assert exact_match("The Paris!", "paris", squad=True) == 1.0
    assert exact_match("cafe\u0301", "CAFÉ") == 1.0           # composed == decomposed
    assert exact_match.on(case_sensitive=True)("a", "A") == 0.0


def test_exact_match_list_of_acceptable_golds():
    assert exact_match("NYC", ["New York", "nyc"]) == 1.0
    assert exact_match("Boston", ["New York", "nyc"]) == 0.0
    assert exact_match("x", []) == 0.0
    assert exact_match("x", ("y", "X")) == 1.0


def test_exact_match_vectorised_over_lists_series_and_arrays():
    assert exact_match(["5", "6", "7"], ["5", ["7", "6"], "8"]) == [1.0, 1.0, 0.0]
    preds = pd.Series(["a", "B"], index=[10, 20])
    out = exact_match(preds, pd.Series(["A", "c"]))
    assert isinstance(out, pd.Series)
    assert out.index.tolist() == [10, 20]
    assert out.tolist() == [1.0, 0.0]
    assert exact_match(np.array(["a", "b"]), np.array(["a", "a"])) == [1.0, 0.0]
    assert exact_match(np.float64(2.0), "2") == 1.0      # a numpy scalar is one value


def test_vector_length_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="2 predictions but 3 gold"):
        exact_match(["a", "b"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="single gold value"):
        exact_match(["a", "b"], "a")


# -- f1 -------------------------------------------------------------------------------------

def test_f1_hand_computed():
    # pred tokens x y z, gold y z w: overlap 2, precision 2/3, recall 2/3 -> 2/3
    assert f1("x y z", "y z w") == pytest.approx(2 / 3)
    # "a" is an article: pred "a b c" -> b c; gold b c d -> precision 1, recall 2/3 -> 0.8
    assert f1("a b c", "b c d") == pytest.approx(0.8)
    # pred "the cat sat" -> cat sat; gold "cat" -> precision 1/2, recall 1 -> 2/3
    assert f1("the cat sat", "cat") == pytest.approx(2 / 3)
    # repeated tokens count with multiplicity: pred x x y, gold x y y -> common 2 -> 2/3
    assert f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert f1("Eiffel Tower!", "the eiffel tower.") == 1.0
    assert f1("Eiffel-Tower", "eiffel tower") == 0.0      # SQuAD: "eiffeltower" is one token
    assert f1("x", "y") == 0.0


def test_f1_edge_cases():
    assert f1("", "") == 1.0          # SQuAD: both empty match
    assert f1("", "x") == 0.0
    assert f1("the", "a") == 1.0      # only articles: both normalise to nothing
    assert f1("Grüße aus Köln", "grüße köln") == pytest.approx(0.8)
    assert f1("ab", ["xy", "ab cd", "b"]) == pytest.approx(2 / 3)   # best of the golds
    assert f1(["x y", "c"], ["x", "c"]) == [pytest.approx(2 / 3), 1.0]


def test_normalize_answer():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("Eiffel-Tower, d'Orsay") == "eiffeltower dorsay"   # SQuAD deletes
    assert normalize_answer("An apple, a pear & the fig") == "apple pear fig"
    assert normalize_answer("¿Qué? «sí»") == "qué sí"        # unicode punctuation
    assert normalize_answer("cafe\u0301") == normalize_answer("café")   # NFD == NFC
    assert to_text(pd.NA) == "" and to_text(3.5) == "3.5"


# -- accuracy -------------------------------------------------------------------------------

def test_accuracy():
    assert accuracy(["Paris", "Rome", "x"], ["paris", "Madrid", ["y", "X"]]) == pytest.approx(2 / 3)
    assert accuracy(pd.Series(["1", "2"]), pd.Series(["1", "2"])) == 1.0
    assert accuracy("a", "A") == 1.0
    assert math.isnan(accuracy([], []))
    assert accuracy.rows(["a", "b"], ["a", "c"]) == [1.0, 0.0]


# -- adapters -------------------------------------------------------------------------------

def test_dspy_metric_form_compares_labels():
    example = FakeExample({"question"}, question="2 + 3?", answer="5")
    assert exact_match(example, {"answer": " 5 "}) == 1.0
    assert exact_match(example, {"answer": "6"}, None) == 0.0
    assert f1.dspy(example, {"answer": "5 apples"}) == pytest.approx(2 / 3)
    assert accuracy(example, {"answer": "5"}) == 1.0


def test_dspy_metric_form_several_fields_and_binding():
    example = FakeExample({"q"}, q="?", a="x", b="y")
    assert exact_match(example, {"a": "x", "b": "z"}) == 0.5       # mean over label fields
    assert exact_match.on("a")(example, {"a": "x", "b": "z"}) == 1.0
    with pytest.raises(ValueError, match=r"share none.*exact_match.on"):
        exact_match(example, {"other": "x"})


def test_dspy_metric_form_with_real_dspy_objects():
    dspy = pytest.importorskip("dspy")
    example = dspy.Example(question="q", answer="Paris").with_inputs("question")
    assert exact_match(example, dspy.Prediction(answer="paris")) == 1.0
    assert f1(example, dspy.Prediction(answer="Paris France"), None) == pytest.approx(2 / 3)


def test_dataframe_columns():
    df = pd.DataFrame({"answer": ["5", "7", "x"], "gold": ["5", "8", "X"]})
    assert exact_match.frame(df, "answer", "gold").tolist() == [1.0, 0.0, 1.0]
    assert accuracy.frame(df, "answer", "gold") == pytest.approx(2 / 3)


def test_metrics_pickle_and_custom_metric():
    clone = pickle.loads(pickle.dumps(exact_match.on("answer", squad=True)))
    assert clone.field == "answer" and clone("The x", "x") == 1.0
    length = Metric("same_length", lambda p, g: float(len(str(p)) == len(str(g))))
    assert length(["ab", "c"], ["xy", "yz"]) == [1.0, 0.0]
    assert "same_length" in repr(length)


def test_metrics_are_native_router_operations():
    router = get_router()
    for name in ("metric.exact_match", "metric.f1", "metric.accuracy"):
        assert router.plan(name).implementation == "native"
    assert router.call("metric.exact_match", ["a", "b"], ["A", "c"]) == [1.0, 0.0]
    assert router.call("metric.exact_match", ["a"], ["A"], case_sensitive=True) == [0.0]

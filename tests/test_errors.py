"""The error tree: messages, carets and pickling across processes."""

import pickle

import pytest

from dspex_lab import errors


def test_signature_error_shows_a_caret_under_the_column():
    err = errors.SignatureError("expected '->'", "question answer", 9, "'->'")
    lines = str(err).splitlines()
    assert lines[0] == "expected '->' (column 10)"
    assert lines[1] == "  question answer"
    assert lines[2].index("^") == 2 + 9


@pytest.mark.parametrize("exc", [
    errors.SignatureError("bad", "a -> ", 5, "a field"),
    errors.ValidationError([("n", "expected int, got str '3'")]),
    errors.RemoteError("ValueError: x", "ValueError", "Traceback..."),
    errors.LMError("rate limited", status=429, retryable=True),
    errors.PipelineError("step failed", step="answer"),
])
def test_errors_survive_pickling(exc):
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is type(exc) and str(copy) == str(exc)
    assert getattr(copy, "step", None) == getattr(exc, "step", None)


def test_validation_error_lists_every_problem():
    err = errors.ValidationError([("a", "missing"), ("b", "expected int")])
    assert "2 problems with the inputs" in str(err)
    assert "  - a: missing" in str(err) and "  - b: expected int" in str(err)


def test_hierarchy_separates_call_failures_from_pool_failures():
    assert issubclass(errors.WorkerCrashed, errors.TaskError)
    assert issubclass(errors.TaskTimeout, TimeoutError)
    assert not issubclass(errors.PoolError, errors.TaskError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.DspexError)

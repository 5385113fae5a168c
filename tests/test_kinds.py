"""``dspex_lab.kinds``: the one vocabulary is what DSPy and the package really use."""

from __future__ import annotations

import re
from pathlib import Path

import dspy
import pytest

from dspex_lab import kinds
from dspex_lab.errors import LMError
from dspex_lab.lm.failures import classify

PACKAGE = Path(__file__).resolve().parents[1] / "dspex_lab"


def test_module_kinds_and_adapters_name_real_dspy_classes():
    for kind, cls in kinds.MODULE_KINDS.items():
        assert kind == "module" or issubclass(getattr(dspy, cls), dspy.Module)
    for cls in kinds.ADAPTERS.values():
        assert issubclass(getattr(dspy, cls), dspy.Adapter)
    assert set(kinds.OPERATIONS) == set(kinds.MODULE_KINDS)
    assert set(kinds.MAGIC_MODULES) <= set(kinds.MODULE_KINDS)


def test_every_telemetry_event_the_package_emits_is_listed():
    emitted = set()
    for path in PACKAGE.rglob("*.py"):
        emitted |= set(re.findall(r'(?:emit|_event)\(\s*"([a-z_.]+)"', path.read_text()))
    assert emitted, "the scan found no events"
    assert emitted <= set(kinds.EVENTS), sorted(emitted - set(kinds.EVENTS))


def test_dspy_class_names_are_spelled_only_in_kinds():
    spelled = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if re.search(r'"(ChainOfThought|JSONAdapter|XMLAdapter)"', p.read_text())]
    assert spelled == ["kinds.py"]


class ProviderError(Exception):
    """What an LM client raises: an HTTP status, no opinion on retrying."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


@pytest.mark.parametrize("status", sorted(kinds.RETRYABLE_STATUS))
def test_single_calls_and_runs_retry_the_same_statuses(status):
    assert classify(ProviderError(status)).retryable  # batch runs classify the raw error
    # a single call's LMError carries the same verdict (calls.py sets it with classify)
    assert classify(LMError("x", status=status, retryable=classify(ProviderError(status))
                            .retryable)).retryable
    assert not classify(ProviderError(400)).retryable


def test_run_states_have_styles_and_words():
    assert kinds.final_state("finished", 0) == "finished"
    assert kinds.final_state("pool_broken", 0) in kinds.RUN_STATES
    assert {kinds.STATE_STYLES[s] for s in kinds.RUN_STATES} <= {"success", "warning", "danger"}

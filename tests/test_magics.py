"""``%%dspex`` and friends through a real in-process IPython shell, against an embedded LM.

The LM is a named LM (``magictest``) on a loopback server whose responder echoes the inputs it
received for an ``echo`` output field, so the tests see exactly what reached the LM.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import get_ipython
from IPython.utils.capture import capture_output

import dspex_lab
from dspex_lab import history, telemetry
from dspex_lab.config import Dspex, get_config
from dspex_lab.display import prediction_html
from dspex_lab.magics import saved, transform
from dspex_lab.magics.magic import DspexMagics
from dspex_lab.testing import running_server


def _echo(prompt):
    if "echo" in prompt.output_names:
        return {"echo": json.dumps(prompt.inputs, sort_keys=True)}
    return None


@pytest.fixture(scope="module")
def ip():
    with running_server(responder=_echo) as server:
        dspex_lab.configure(lms={"magictest": {"model": "openai/dspex-embedded",
                                               "api_base": server.url, "api_key": "x",
                                               "cache": False, "num_retries": 0}})
        shell = get_ipython()
        shell.run_line_magic("load_ext", "dspex_lab")
        try:
            yield shell
        finally:
            shell.run_line_magic("unload_ext", "dspex_lab")
            dspex_lab.configure(lms={"magictest": None, "broken": None})
            saved.clear()


@pytest.fixture(autouse=True)
def fresh_config(ip):
    cfg = get_config()
    before = {name: getattr(cfg, name) for name in cfg.trait_names(config=True)}
    cfg.lm = "magictest"
    yield cfg
    for name, value in before.items():
        setattr(cfg, name, value)


def run(ip, code: str):
    """Run a cell; return (result, stderr text)."""
    with capture_output() as cap:
        result = ip.run_cell(code)
    return result, cap.stderr


def echoed(pred) -> dict:
    return json.loads(pred.echo)


# -- calls ---------------------------------------------------------------------------------------

def test_single_input_body_is_the_whole_value(ip):
    result, _ = run(ip, "%%dspex question -> answer --out ans\nWhat is the capital of France?")
    assert result.success
    pred = result.result
    assert pred.answer == "Paris"
    assert ip.user_ns["ans"] is pred and ip.user_ns["_dspex"] is pred
    assert pred._dspex.operation == "predict" and pred._dspex.model == "openai/dspex-embedded"


def test_multiline_value_for_one_input(ip):
    result, _ = run(ip, "%%dspex text -> echo\nfirst line\nsecond: still text")
    assert echoed(result.result) == {"text": "first line\nsecond: still text"}


def test_field_value_lines(ip):
    cell = ("%%dspex context, question -> echo\n"
            "context: Ada wrote the first program.\n  It ran on the Analytical Engine.\n"
            "question: Who wrote it?")
    result, _ = run(ip, cell)
    assert echoed(result.result) == {
        "context": "Ada wrote the first program.\nIt ran on the Analytical Engine.",
        "question": "Who wrote it?"}


def test_yaml_body_gives_typed_values(ip):
    cell = ("%%dspex docs: list[str], k: int, note -> echo\n"
            "docs:\n  - alpha\n  - beta\nk: 2\nnote: |\n  line one\n  line two\n")
    result, _ = run(ip, cell)
    assert result.success, result.error_in_exec
    assert history.recent(1)[0].inputs == {"docs": ["alpha", "beta"], "k": 2,
                                           "note": "line one\nline two"}
    sent = echoed(result.result)
    assert json.loads(sent["docs"]) == ["alpha", "beta"] and sent["k"] == "2"


def test_interpolation_names_attributes_indexes_and_objects(ip):
    ip.user_ns.update(q="What is the capital of France?", items=["x", "y"],
                      cfg={"lang": "en"}, docs=["d1", "d2"])
    cell = ("%%dspex question, extra, docs: list[str] -> echo\n"
            "question: {q}\nextra: {items[1]} {cfg[lang]} {{literal}}\ndocs: {docs}")
    result, _ = run(ip, cell)
    assert result.success, result.error_in_exec
    assert history.recent(1)[0].inputs == {"question": "What is the capital of France?",
                                           "extra": "y en {literal}", "docs": ["d1", "d2"]}


def test_interpolation_of_a_missing_variable_is_a_short_error(ip):
    result, err = run(ip, "%%dspex question -> answer\n{nowhere_defined}")
    assert isinstance(result.error_in_exec, UsageError)
    assert "no variable 'nowhere_defined'" in err and "Traceback" not in err


def test_df_runs_over_a_dataframe_and_stores_out(ip):
    ip.user_ns["questions"] = pd.DataFrame(
        {"question": ["What is 2 + 3?", "What is the capital of Japan?"]})
    with capture_output() as cap:
        result = ip.run_cell("%dspex question -> answer --df questions --out answers")
    frame = result.result
    assert list(frame["answer"]) == ["5", "Tokyo"]
    assert frame["error"].isna().all()
    assert ip.user_ns["answers"] is frame and ip.user_ns["_dspex"] is frame
    summary = [o for o in cap.outputs if "dspex run" in o.data.get("text/plain", "")]
    assert summary and "2 rows · 0 failed · 0 cached" in summary[0].data["text/plain"]
    assert history.recent(1)[0].kind == "run"


def test_df_body_maps_fields_to_columns(ip):
    ip.user_ns["qs"] = pd.DataFrame({"q": ["What is 4 + 4?"]})
    result, _ = run(ip, "%%dspex question -> answer --df qs\nquestion: q")
    assert list(result.result["answer"]) == ["8"]


def test_save_and_with(ip):
    result, _ = run(ip, "%dspex question -> answer --module cot --save qa")
    assert "Saved program 'qa'" in repr(result.result)
    result, _ = run(ip, "%%dspex --with qa --out r\nWhat is 6 * 7?")
    assert result.result.answer == "42" and result.result.reasoning
    assert result.result._dspex.operation == "chain_of_thought"
    result, err = run(ip, "%%dspex question -> answer --with qa\nhi")
    assert "either a signature or --with qa" in err
    result, err = run(ip, "%%dspex --with nothing_saved\nhi")
    assert "no saved program or variable named 'nothing_saved'" in err


def test_with_a_notebook_variable_holding_a_program(ip):
    ip.user_ns["prog"] = dspex_lab.Program("predict", dspex_lab.signature("text -> echo"))
    result, _ = run(ip, "%%dspex --with prog\nhello")
    assert echoed(result.result) == {"text": "hello"}


def test_assignment_line_form_shows_nothing(ip):
    ip.user_ns["qs2"] = pd.DataFrame({"question": ["What is 1 + 1?"]})
    result, _ = run(ip, "res << %dspex question -> answer --df qs2")
    assert result.success and result.result is None
    assert list(ip.user_ns["res"]["answer"]) == ["2"]
    result, _ = run(ip, "%dspex res2 << question -> answer --df qs2")   # jupysql's form
    assert result.result is None and list(ip.user_ns["res2"]["answer"]) == ["2"]


def test_assignment_cell_form(ip):
    result, _ = run(ip, "ans2 << %%dspex question -> answer\nWhat is the capital of Italy?")
    assert result.success and result.result is None
    assert ip.user_ns["ans2"].answer == "Rome"
    assert transform.assign_transform(["  x << %dspex a -> b --df d\n"]) == \
        ["  %dspex x << a -> b --df d\n"]


def test_no_cache_and_adapter_options(ip):
    cell = "%%dspex question -> answer --no-cache --adapter json\nWhat is 9 - 4?"
    result, _ = run(ip, cell)
    assert result.result.answer == "5" and not result.result._dspex.cached
    assert history.recent(1)[0].adapter == "json"


def test_react_with_notebook_tools(ip):
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    ip.user_ns["add"] = add
    result, _ = run(ip, "%%dspex question -> answer --module react --tools add\nWhat is 2 + 3?")
    assert result.success, result.error_in_exec
    assert result.result.answer == "5" and "add" in str(result.result.trajectory)


# -- configuration -------------------------------------------------------------------------------

def test_config_magic_sets_defaults_and_aliases(ip, fresh_config, caplog):
    assert fresh_config in ip.configurables
    run(ip, '%config Dspex.aliases = {"mine": "magictest"}')
    run(ip, '%config Dspex.lm = "mine"')
    run(ip, '%config Dspex.module = "cot"')
    assert fresh_config.lm == "mine" and fresh_config.resolve_lm() == "magictest"
    result, _ = run(ip, "%%dspex question -> answer\nWhat is the capital of France?")
    assert result.result.reasoning and result.result._dspex.operation == "chain_of_thought"
    run(ip, '%config Dspex.module = "tree"')            # %config logs the TraitError
    assert fresh_config.module == "cot" and "not the str 'tree'" in caplog.text


def test_dspex_lm_shows_and_sets(ip, fresh_config):
    result, _ = run(ip, "%dspex_lm")
    facts = result.result.as_dict()
    assert facts["model"] == "openai/dspex-embedded" and "magictest" in facts["source"]
    assert "magictest" in facts["named LMs"] and "judge" not in facts["named LMs"]
    result, _ = run(ip, "%dspex_lm embedded")
    assert fresh_config.lm == "embedded"
    dspex_lab.configure(lms={"judge": "openai/gpt-4o-mini"})
    try:
        facts = run(ip, "%dspex_lm")[0].result.as_dict()
        assert facts["named LMs"]["judge"] == "openai/gpt-4o-mini"
    finally:
        dspex_lab.configure(lms={"judge": None})
    result, err = run(ip, "%dspex_lm nonsense-model")
    assert isinstance(result.error_in_exec, UsageError) and "provider/model" in err
    assert fresh_config.lm == "embedded"


def test_dspex_lm_flags_set_the_embedded_lms_knobs(ip, fresh_config):
    from dspex_lab.lm.config import configure_embedded, embedded_server

    fresh_config.lm = "embedded"
    try:
        result, _ = run(ip, "%dspex_lm --latency 120 --jitter 5 --error-kinds 429,500")
        knobs = result.result.as_dict()["embedded LM knobs"]
        assert knobs["latency_ms"] == 120 and knobs["error_kinds"] == ["429", "500"]
        assert embedded_server().options.jitter_ms == 5
        result, err = run(ip, "%dspex_lm --error-rate 7")
        assert isinstance(result.error_in_exec, UsageError) and "error_rate" in err
    finally:
        configure_embedded({"latency_ms": 0, "jitter_ms": 0, "error_kinds": ["429", "500"]})


def test_get_config_is_the_registered_configurable(ip):
    assert get_config() is Dspex.instance()
    assert [c for c in ip.configurables if isinstance(c, Dspex)] == [get_config()]


# -- errors --------------------------------------------------------------------------------------

def test_bad_signature_shows_the_caret_without_traceback(ip):
    result, err = run(ip, "%%dspex question -> answer: flot\nhi")
    assert isinstance(result.error_in_exec, UsageError)
    assert "The signature does not parse" in err and "question -> answer: flot" in err
    assert err.splitlines()[-1].strip() == "^" and "Traceback" not in err


def test_missing_input_names_the_field(ip):
    result, err = run(ip, "%%dspex context, question -> answer\nquestion: Why?")
    assert isinstance(result.error_in_exec, UsageError)
    assert "context: has no value in the cell; add a line `context: ...`" in err


def test_misspelled_option_suggests_the_right_one(ip):
    result, err = run(ip, "%%dspex question -> answer --modle cot\nhi")
    assert isinstance(result.error_in_exec, UsageError) and "Traceback" not in err
    assert "has no option --modle; did you mean --module?" in err
    assert len(err.strip().splitlines()) == 1


def test_line_form_without_df_explains_the_cell_form(ip):
    result, err = run(ip, "%dspex question -> answer")
    assert isinstance(result.error_in_exec, UsageError) and "--df" in err and "%%dspex" in err


def test_lm_failure_is_one_paragraph(ip):
    with running_server(error_rate=1.0) as broken:
        dspex_lab.configure(lms={"broken": {"model": "openai/dspex-embedded",
                                            "api_base": broken.url, "api_key": "x",
                                            "cache": False, "num_retries": 0}})
        result, err = run(ip, "%%dspex question -> answer --lm broken\nWhat is 3 + 3?")
    assert isinstance(result.error_in_exec, UsageError)
    assert "The call failed" in err and "Traceback" not in err
    assert "\n\n" not in err.strip()
    assert dspex_lab.magics.last_error() is not None
    assert history.recent(1)[0].error


def test_help_lists_every_option(ip):
    with capture_output() as cap:
        ip.run_cell("%%dspex?")
    text = cap.stdout
    for option in DspexMagics.dspex.parser._option_string_actions:
        assert option in text, option
    for needle in ("field: value", "{name}", "<<", "_dspex"):
        assert needle in text


# -- the other line magics -----------------------------------------------------------------------

def test_history_shows_inputs_outputs_and_the_prompt(ip):
    run(ip, "%%dspex question -> answer\nWhat is the capital of France?")
    result, _ = run(ip, "%dspex_history 1")
    view = result.result
    assert len(view.records) == 1
    text, html = repr(view), view._repr_html_()
    assert "What is the capital of France?" in text and "-> answer: Paris" in text
    assert "[[ ## question ## ]]" in html and "[[ ## answer ## ]]" in html


def test_pool_and_telemetry_magics(ip):
    run(ip, "%%dspex question -> answer --no-cache\nWhat is 7 + 1?")
    result, _ = run(ip, "%dspex_pool")
    assert any(s["name"] == "general" for s in result.result.statuses)
    assert "general" in result.result._repr_html_()
    result, err = run(ip, "%dspex_pool nosuchpool")
    assert "No pool named 'nosuchpool'" in err
    result, _ = run(ip, "%dspex_telemetry --summary")
    assert "Telemetry summary" in repr(result.result)
    assert "call" in result.result.extra.index


def test_telemetry_dashboard_is_closed_on_reopen_and_unload(ip):
    pytest.importorskip("dspex_lab.widgets.dashboard")
    bus = telemetry.get_bus()
    before = len(bus._subscribers)
    first, _ = run(ip, "%dspex_telemetry")
    assert type(first.result).__name__ == "TelemetryDashboard"
    assert len(bus._subscribers) == before + 1
    second, _ = run(ip, "%dspex_telemetry")
    assert first.result.closed and not second.result.closed
    assert len(bus._subscribers) == before + 1
    ip.run_line_magic("unload_ext", "dspex_lab")
    ip.run_line_magic("load_ext", "dspex_lab")
    assert second.result.closed and len(bus._subscribers) == before


# -- registration --------------------------------------------------------------------------------

def _counts(shell):
    import dspy

    html = shell.display_formatter.formatters["text/html"]
    return {
        "line": sum(n.startswith("dspex") for n in shell.magics_manager.magics["line"]),
        "cell": sum(n.startswith("dspex") for n in shell.magics_manager.magics["cell"]),
        "config": sum(isinstance(c, Dspex) for c in shell.configurables),
        "transform": shell.input_transformers_cleanup.count(transform.assign_transform),
        "formatter": int(html.lookup(dspy.Prediction(answer="x")) is prediction_html)
        if _has_printer(html) else 0,
        "subscribers": len(telemetry.get_bus()._subscribers),
    }


def _has_printer(formatter) -> bool:
    import dspy

    try:
        formatter.lookup(dspy.Prediction(answer="x"))
    except KeyError:
        return False
    return True


def test_load_twice_unload_and_reload(ip):
    loaded = _counts(ip)
    assert loaded["line"] == 6 and loaded["cell"] == 1 and loaded["config"] == 1
    assert loaded["transform"] == 1 and loaded["formatter"] == 1
    ip.run_line_magic("reload_ext", "dspex_lab")
    dspex_lab.load_ipython_extension(ip)
    assert _counts(ip) == loaded
    get_config().module = "cot"
    ip.run_line_magic("unload_ext", "dspex_lab")
    gone = _counts(ip)
    assert gone == {**loaded, "line": 0, "cell": 0, "config": 0, "transform": 0, "formatter": 0}
    result, err = run(ip, "%%dspex question -> answer\nhi")
    assert not result.success and "dspex" in err
    ip.run_line_magic("load_ext", "dspex_lab")
    assert _counts(ip) == loaded
    assert get_config().module == "cot"          # settings survive a reload


def test_cache_magic_shows_location_entries_hit_rate_and_clears(ip, tmp_path):
    from dspex_lab.cache import ResultCache, get_cache, set_cache

    before = get_cache()
    set_cache(ResultCache(tmp_path / "results.sqlite"))
    try:
        result, _ = run(ip, "%dspex_cache")
        assert result.result.as_dict()["hit rate"] == "no lookups yet in this kernel"
        run(ip, "%%dspex question -> answer\nWhat is 9 + 1?")  # a miss, then stored
        run(ip, "%%dspex question -> answer\nWhat is 9 + 1?")  # a hit
        result, _ = run(ip, "%dspex_cache")
        facts = result.result.as_dict()
        assert facts["location"] == str(tmp_path / "results.sqlite")
        assert facts["entries"] == 1 and facts["size"].endswith(("bytes", "KB"))
        assert facts["hit rate"] == "50% (1 hits, 1 misses in this kernel)"
        assert "DSPEX_CACHE_DIR" in repr(result.result)
        result, _ = run(ip, "%dspex_cache --clear")
        facts = result.result.as_dict()
        assert (facts["entries"], facts["cleared"]) == (0, "1 entries")
        _, err = run(ip, "%dspex_cache --nope")
        assert "unrecognized arguments" in err
    finally:
        set_cache(before)


def test_ctrl_c_in_a_magic_is_one_line_and_still_stops_the_cell():
    from dspex_lab.errors import Interrupted
    from dspex_lab.magics.magic import _usage_errors

    @_usage_errors
    def slow_call():
        raise KeyboardInterrupt

    with pytest.raises(Interrupted) as info:
        slow_call()
    assert info.value._render_traceback_() == [str(info.value)]
    assert str(info.value).startswith("Interrupted after 0.") and str(info.value).endswith(
        " s; no answer arrived.")

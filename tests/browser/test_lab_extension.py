"""The prebuilt dspex-lab JupyterLab extension in a real browser: highlighting, panel, commands.

Screenshots: test-artifacts/lab_extension_full.png, lab_extension_cell.png,
lab_extension_panel.png, lab_extension_batch_panel.png (the panel during a real batch run).
"""

from __future__ import annotations

import re

import pytest

SIGNATURE = '%%dspex question: str, context: list[str] -> answer: str "short" --model fast'
CELLS = [
    f"{SIGNATURE}\nquestion: What is {{topic}}?\ncontext: ['DSPy docs']",
    "from dspex_lab.labext import register_comm_target\nregister_comm_target(get_ipython())",
    "import time\n"
    "from dspex_lab import telemetry\n"
    "for i in range(5):\n"
    "    telemetry.emit('lm.call', model='m', latency_ms=12.0 + i, prompt_tokens=10,\n"
    "                   completion_tokens=5, cost=0.0, error='Timeout' if i == 4 else None)\n"
    "    time.sleep(0.2)\n"
    "print('emitted')",
    # A stand-in pool module, so the pool table has rows whatever state dspex_lab.workers is in.
    "import sys, types\n"
    "stub = types.ModuleType('dspex_lab.workers')\n"
    "stub.pool_status = lambda: [\n"
    "    dict(name='default', size=2, alive=2, busy=1, queued=3, tasks_done=7, restarts=0),\n"
    "    dict(name='heavy', size=2, alive=1, busy=1, queued=0, tasks_done=2, restarts=1)]\n"
    "stub.shutdown_all = lambda: None\n"
    "sys.modules['dspex_lab.workers'] = stub",
]

PANEL = "#dspex-lab-panel"


def total(page, key: str):
    return page.locator(f"{PANEL} .jp-DSPexPanel-total[data-key='{key}'] .jp-DSPexPanel-value")


def run_cell(page, index: int) -> None:
    page.evaluate(
        "i => { const nb = jupyterapp.shell.currentWidget.content; nb.activeCellIndex = i; "
        "return jupyterapp.commands.execute('notebook:run-cell'); }", index)


@pytest.mark.timeout(120)
def test_highlighting_panel_and_commands(lab, page, artifacts):
    from playwright.sync_api import expect

    lab.open(page, lab.write_notebook("dspex_ext.ipynb", CELLS))

    # 1. highlighting of the %%dspex cell (the signature line and the body)
    cell = page.locator(".jp-Notebook .jp-Cell").first
    for kind, texts in {"magic": ["%%dspex"], "field": ["question", "context", "answer",
                                                        "question", "context"],
                        "type": ["str", "list", "str", "str"], "arrow": ["->"],
                        "desc": ['"short"'], "option": ["--model"], "value": ["fast"],
                        "interp": ["{topic}"]}.items():
        expect(cell.locator(f".cm-dspex-{kind}")).to_have_text(texts)
    style = cell.locator(".cm-dspex-field").first.evaluate(
        "e => [getComputedStyle(e).fontWeight, getComputedStyle(e).color]")
    plain = cell.locator(".cm-line").last.evaluate("e => getComputedStyle(e).color")
    assert style[0] == "700" and style[1] != plain, (style, plain)
    # the body is data: Python's keyword colouring of "is" is switched off there
    keyword = cell.locator(".cm-dspex-body span", has_text=re.compile("^is$"))
    assert keyword.evaluate("e => getComputedStyle(e).fontWeight") == "400"
    expect(page.locator(".jp-Notebook .jp-Cell").nth(1).locator("[class*='cm-dspex-']")) \
        .to_have_count(0)

    # 2. the panel: not loaded yet -> asks for %load_ext; after registration -> live counters
    page.evaluate("jupyterapp.commands.execute('dspex:show-panel')")
    status = page.locator(f"{PANEL} .jp-DSPexPanel-status")
    expect(status).to_contain_text("%load_ext dspex_lab", timeout=20_000)
    run_cell(page, 1)
    expect(status).to_have_text("Live", timeout=20_000)
    expect(total(page, "calls")).to_have_text("0")
    run_cell(page, 2)
    expect(total(page, "calls")).to_have_text("5", timeout=20_000)
    expect(total(page, "errors")).to_have_text("1")
    expect(total(page, "tokens")).to_have_text("75")
    rows = page.locator(f"{PANEL} .jp-DSPexPanel-recent tbody tr:not(.jp-DSPexPanel-detail)")
    expect(rows).to_have_count(5)
    expect(page.locator(f"{PANEL} .jp-DSPexPanel-recent tr.jp-DSPexPanel-detail")).to_have_text(
        "Timeout")
    expect(page.locator(".jp-OutputArea-output").filter(has_text="emitted")).to_have_count(1)
    run_cell(page, 3)
    pools = page.locator(f"{PANEL} .jp-DSPexPanel-pools tbody tr")
    expect(pools).to_have_count(2, timeout=20_000)
    expect(pools.nth(0)).to_have_text(re.compile(r"default\s*2/2\s*1\s*3\s*7\s*0"))
    expect(pools.nth(1)).to_have_class(re.compile("jp-mod-warn"))
    page.screenshot(path=artifacts / "lab_extension_full.png")
    cell.screenshot(path=artifacts / "lab_extension_cell.png")
    page.locator(PANEL).screenshot(path=artifacts / "lab_extension_panel.png")

    # 3. the commands: palette category, insert a highlighted cell, restart pools over the comm
    labels = page.evaluate(
        "['dspex:insert-cell', 'dspex:open-telemetry', 'dspex:restart-pools', "
        "'dspex:show-panel'].map(c => jupyterapp.commands.label(c))")
    assert labels == ["Insert %%dspex cell", "Open telemetry dashboard", "Restart worker pools",
                      "Show DSPex panel"]
    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill("dspex")
    expect(page.locator(".lm-CommandPalette-header").filter(has_text="DSPex")).to_have_count(1)
    expect(page.locator(".lm-CommandPalette-item")).to_have_count(4)
    page.keyboard.press("Escape")

    cells = page.locator(".jp-Notebook .jp-Cell")
    page.evaluate("jupyterapp.commands.execute('dspex:insert-cell')")
    expect(cells).to_have_count(5)
    inserted = cells.nth(4)
    expect(inserted.locator(".cm-dspex-magic")).to_have_text("%%dspex")
    expect(inserted.locator(".cm-dspex-field")).to_have_text(["question", "answer", "question"])

    notice = page.locator(f"{PANEL} .jp-DSPexPanel-notice")
    page.locator(f"{PANEL} button", has_text="Restart pools").click()
    expect(notice).to_have_text("Worker pools shut down; they restart on next use.",
                                timeout=20_000)

    page.evaluate("jupyterapp.commands.execute('dspex:open-telemetry')")
    expect(cells).to_have_count(6)
    expect(cells.nth(5).locator(".jp-InputArea-editor")).to_have_text("%dspex_telemetry")
    expect(cells.nth(5).locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]"),
                                                                 timeout=20_000)

    # 4. a restarted kernel has no target: the panel asks again, then reconnects
    page.evaluate("jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
    expect(status).to_contain_text("%load_ext dspex_lab", timeout=30_000)
    run_cell(page, 1)
    expect(status).to_have_text("Live", timeout=20_000)
    expect(total(page, "calls")).to_have_text("0")
    assert page.js_errors == []


BATCH_CELLS = [
    "%load_ext dspex_lab",
    "import pandas as pd, dspex_lab\n"
    "from dspex_lab.workers import configure_pools\n"
    "configure_pools({'general': {'size': 1}})\n"
    "dspex_lab.configure(lm='embedded')\n"
    "df = pd.DataFrame({'question': [f'What is {i} + 1?' for i in range(12)]\n"
    "                  + ['Boom [[fail:500]]']})\n"
    "res = dspex_lab.run('question -> answer', df, progress=False, cache=False, max_retries=0)\n"
    "print('batch done', len(res), int(res['error'].notna().sum()))",
]


@pytest.mark.timeout(150)
def test_panel_follows_a_real_batch_run(lab, page, artifacts):
    """The panel, fed over the comm by a real ``dspex_lab.run`` on the worker pool."""
    from playwright.sync_api import expect

    lab.open(page, lab.write_notebook("dspex_batch.ipynb", BATCH_CELLS))
    page.evaluate("jupyterapp.commands.execute('dspex:show-panel')")
    status = page.locator(f"{PANEL} .jp-DSPexPanel-status")
    run_cell(page, 0)                       # %load_ext registers the comm target
    expect(status).to_have_text("Live", timeout=30_000)
    expect(total(page, "calls")).to_have_text("0")
    run_cell(page, 1)
    expect(page.locator(".jp-OutputArea-output").filter(has_text="batch done 13 1")) \
        .to_have_count(1, timeout=90_000)
    expect(total(page, "calls")).to_have_text("13", timeout=20_000)
    expect(total(page, "errors")).to_have_text("1")
    # real usage from the embedded LM (~150 tokens a row), shown abbreviated: "1.9k"
    expect(total(page, "tokens")).to_have_text(re.compile(r"^\d(\.\d)?k$"))
    pools = page.locator(f"{PANEL} .jp-DSPexPanel-pools tbody tr")
    expect(pools.filter(has_text="general")).to_have_count(1, timeout=20_000)
    page.locator(PANEL).screenshot(path=artifacts / "lab_extension_batch_panel.png")
    assert page.js_errors == []

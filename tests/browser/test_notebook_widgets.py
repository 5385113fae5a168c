"""The widgets tour notebook in a real browser: JupyterLab + headless Debian chromium.

Runs every cell of ``notebooks/widgets_tour.ipynb``, then checks, in the page:

* ``SignatureBuilder`` renders its field rows; adding a field from the browser shows the
  parser's error (with its column), and naming it makes the signature valid again;
* ``BatchRunner``: pressing Run in the browser runs the 40 rows in the background, the progress
  bar fills and the live table shows answers; a second, slow run is cancelled from the browser
  (its finished rows kept, the rest marked not run);
* ``TelemetryDashboard``: the plotly charts render (``.js-plotly-plot .main-svg``) and their
  trace data follows the run (latency histogram counts >= 40 calls);
* a ``%%dspex`` cell answers "Paris".

Screenshots (test-artifacts/): widgets_tour_full.png, widgets_tour_signature.png,
widgets_tour_runner.png, widgets_tour_cancelled.png, widgets_tour_dashboard.png. Uses the
``lab``/``page`` fixtures of ``conftest.py`` (skipped, with the reason, when chromium or
playwright is missing).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parent / "notebooks" / "widgets_tour.ipynb"
LATENCY_TOTAL = """() => {
  const el = document.querySelector('.dspex-telemetry-dashboard .js-plotly-plot');
  if (!el || !el.data || !el.data[0] || !el.data[0].y) return 0;
  return Array.from(el.data[0].y).reduce((a, b) => a + b, 0);
}"""


def output_with(page, text: str):
    return page.locator(".jp-OutputArea-output").filter(has_text=text)


@pytest.mark.timeout(150)  # ~60-75 s here; margin for a loaded machine
def test_widgets_tour_renders_and_runs(lab, page, artifacts):
    from playwright.sync_api import expect

    shutil.copy(NOTEBOOK, lab.root / NOTEBOOK.name)
    page.set_viewport_size({"width": 1400, "height": 1800})
    lab.open(page, NOTEBOOK.name)
    page.evaluate("jupyterapp.commands.execute('notebook:run-all-cells')")
    expect(output_with(page, "widgets ready")).to_have_count(1, timeout=60_000)

    # SignatureBuilder: rows render; a browser edit round-trips through the kernel
    builder = page.locator(".dspex-signature-builder")
    builder.scroll_into_view_if_needed()
    expect(builder.locator(".dspex-field-row")).to_have_count(2)
    expect(builder).to_contain_text("valid")
    builder.locator(".jupyter-button", has_text="+ input").click()
    expect(builder.locator(".dspex-field-row")).to_have_count(3, timeout=10_000)
    expect(builder).to_contain_text("(column 9)", timeout=10_000)
    builder.locator(".dspex-field-row").nth(1).locator("input").first.fill("context")
    expect(builder).to_contain_text("question, context -> answer: int", timeout=10_000)
    builder.screenshot(path=str(artifacts / "widgets_tour_signature.png"))

    # BatchRunner: Run from the browser; the bar fills while the kernel stays idle
    runner = page.locator(".dspex-batch-runner").first
    runner.scroll_into_view_if_needed()
    runner.locator(".jupyter-button", has_text="Run").click()
    expect(runner).to_contain_text("40 / 40", timeout=60_000)
    expect(runner).to_contain_text("finished", timeout=10_000)
    expect(runner.locator(".widget-hprogress")).to_have_count(1)
    expect(runner.locator("table")).to_contain_text("What is 39 + 39? 78")
    runner.screenshot(path=str(artifacts / "widgets_tour_runner.png"))

    # a long run, cancelled from the browser: finished rows are kept, the rest marked
    slow = page.locator(".dspex-batch-runner").nth(1)
    slow.scroll_into_view_if_needed()
    # the runner's table grows every refresh, so Playwright never sees it "stable": dispatch
    slow.locator(".jupyter-button", has_text="Run").dispatch_event("click")
    expect(slow).to_contain_text("running", timeout=30_000)
    page.wait_for_function(
        "() => /^([4-9]|\\d\\d+) \\//.test(document.querySelectorAll("
        "'.dspex-batch-runner')[1].querySelector('.widget-hprogress .widget-label').textContent)",
        timeout=60_000)
    slow.locator(".jupyter-button", has_text="Cancel").dispatch_event("click")
    expect(slow).to_contain_text("cancelled", timeout=10_000)
    expect(slow).to_contain_text("not run")
    expect(slow.locator(".jupyter-button", has_text="Triage failures")).to_be_visible()
    slow.screenshot(path=str(artifacts / "widgets_tour_cancelled.png"))

    # TelemetryDashboard: plotly rendered, and its data followed the run
    dash = page.locator(".dspex-telemetry-dashboard")
    dash.scroll_into_view_if_needed()
    expect(dash.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=30_000)
    page.wait_for_function(f"({LATENCY_TOTAL})() >= 40", timeout=30_000)
    expect(dash.locator(".dspex-total[data-key='calls']")).not_to_have_text("0")
    dash.screenshot(path=str(artifacts / "widgets_tour_dashboard.png"))

    # the %%dspex cell
    expect(output_with(page, "Paris").first).to_be_attached(timeout=60_000)
    page.screenshot(path=str(artifacts / "widgets_tour_full.png"))
    assert not [e for e in page.js_errors if "plotly" in e.lower() or "widget" in e.lower()], \
        page.js_errors

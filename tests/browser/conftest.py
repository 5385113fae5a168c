"""Reusable fixtures for real-browser tests: a JupyterLab server and headless Debian chromium.

    def test_x(lab, page):                       # `page` is a fresh chromium page
        path = lab.write_notebook("x.ipynb", ["print('hi')"])
        lab.open(page, path)                     # waits until the kernel is idle

The server listens on 127.0.0.1 with a random token, temp config/runtime/data dirs (no user
settings or workspaces), the announcements toast disabled, ``window.jupyterapp`` exposed and the
committed prebuilt ``dspex_lab/labextension`` loaded from the source tree. Kernels get the repo on
``PYTHONPATH``. Screenshots go to ``test-artifacts/``. Tests are skipped, with the reason, when
``/usr/bin/chromium`` (or ``$CHROMIUM``) or Python playwright is missing.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LABEXTENSION = ROOT / "dspex_lab" / "labextension"


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (apt-get install chromium, or set $CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Python playwright is not installed (pip install playwright; no browser download)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab server."""

    base: str
    token: str
    root: Path
    log: Path

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path}{sep}token={self.token}"

    def write_notebook(self, name: str, cells: list[str]) -> str:
        """Write a code-cell notebook (no outputs) under the server root; returns its path."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                     "language": "python"}
        nbformat.write(nb, self.root / name)
        return name

    def open(self, page, path: str, timeout: float = 60_000) -> None:
        """Open a notebook with a reset workspace and wait until its kernel is idle."""
        from playwright.sync_api import expect

        page.goto(self.url(f"lab/tree/{path}") + "&reset")
        expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=timeout)


def _start_lab(tmp: Path) -> tuple[subprocess.Popen, Lab]:
    cfg, root, ext = tmp / "config", tmp / "root", tmp / "labextensions"
    (cfg / "labconfig").mkdir(parents=True)
    root.mkdir()
    ext.mkdir()
    (ext / "dspex-lab").symlink_to(LABEXTENSION, target_is_directory=True)
    (cfg / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(cfg), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    log = tmp / "lab.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root",
         "--LabApp.expose_app_in_browser=True", f"--LabApp.extra_labextensions_path={ext}"],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{lab.base}/api/status?token={token}", timeout=1)
            return proc, lab
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early:\n{log.read_text()}") from None
            time.sleep(0.25)
    _stop(proc)
    raise TimeoutError(f"jupyter lab did not answer within 60 s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM lets the server shut its kernels down; kill only if it hangs."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """A JupyterLab server for the module's tests; stopped (with its kernels) afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="dspex-lab-browser-"))
    proc, server = _start_lab(tmp)
    try:
        yield server
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian chromium through Python playwright (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    """A fresh page; JavaScript errors are collected in ``page.js_errors``."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.js_errors = []
    pg.on("pageerror", lambda exc: pg.js_errors.append(str(exc)))
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def artifacts() -> Path:
    """The directory for screenshots (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS

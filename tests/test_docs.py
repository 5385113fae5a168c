"""The documentation site: it builds offline with ``mkdocs build --strict`` (warnings are
errors), every public function and class has a docstring and a place in the API reference,
and tutorial notebooks are rendered as saved, never executed.

The site is built once per module, in a subprocess (about 20 s of CPU on 2 cores).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import types
import zlib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / "docs" / "_hooks"

# Packages and modules whose public names must be documented, besides the modules listed in
# ``dspex_lab.__all__``. Names come from ``__all__``, else every public function and class
# defined in the module.
PUBLIC_MODULES = (
    "dspex_lab", "dspex_lab.settings", "dspex_lab.config", "dspex_lab.calls",
    "dspex_lab.programs", "dspex_lab.signatures", "dspex_lab.lm", "dspex_lab.lm_server",
    "dspex_lab.router", "dspex_lab.workers", "dspex_lab.workers.protocol", "dspex_lab.exchange",
    "dspex_lab.distributed", "dspex_lab.batch", "dspex_lab.evaluate", "dspex_lab.optimize",
    "dspex_lab.persistence", "dspex_lab.native", "dspex_lab.pipeline", "dspex_lab.telemetry",
    "dspex_lab.magics", "dspex_lab.display", "dspex_lab.widgets", "dspex_lab.labext",
    "dspex_lab.testing", "dspex_lab.errors",
)


def build(config: Path, site: Path, env: dict[str, str] | None = None) -> None:
    """``mkdocs build --strict`` in a subprocess; fails the test with mkdocs' own output."""
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
           "-f", str(config), "-d", str(site)]
    environ = {**os.environ, "NO_MKDOCS_2_WARNING": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=ROOT, env=environ, capture_output=True, text=True,
                          timeout=900)
    if "No module named mkdocs" in proc.stderr:
        pytest.fail("The documentation tools are missing: pip install -e '.[dev]' (make test "
                    "does it) to get mkdocs-material, mkdocstrings[python] and mkdocs-jupyter.")
    assert proc.returncode == 0, (
        f"`{' '.join(cmd[2:])}` failed (warnings are errors):\n{proc.stdout}\n{proc.stderr}")


def load_hooks() -> types.ModuleType:
    """A fresh import of the MkDocs hooks module (``docs/_hooks/dspex_docs.py``)."""
    spec = importlib.util.spec_from_file_location("dspex_docs_hooks", HOOKS / "dspex_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CRAFTED = "99_saved_not_run.ipynb"  # added to the tutorials of the test build only


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real site, built once; its tutorials are the real notebooks plus ``CRAFTED``, a
    notebook that would fail if the build ran it."""
    notebooks = tmp_path_factory.mktemp("notebooks")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        (notebooks / path.name).symlink_to(path)
    notebook(notebooks / CRAFTED, "Saved, not run", "saved output 42")
    out = tmp_path_factory.mktemp("site")
    build(ROOT / "mkdocs.yml", out, env={"DSPEX_DOCS_NOTEBOOKS": str(notebooks)})
    return out


def inventory(site: Path) -> set[str]:
    """Every identifier in the site's ``objects.inv`` (public and canonical paths)."""
    data = (site / "objects.inv").read_bytes()
    for _ in range(4):  # four header lines, then zlib
        data = data.split(b"\n", 1)[1]
    return {line.split(" ", 1)[0] for line in zlib.decompress(data).decode().splitlines()}


def public_names(module: types.ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return [n for n in names if not n.startswith("__")]
    return [n for n, obj in vars(module).items()
            if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module.__name__]


def documented_object(module: types.ModuleType, name: str) -> tuple[str, object] | None:
    """``(identifier, object)`` for a public function, class or module; None for values.

    A module that is also callable under its own name (``dspex_lab.evaluate``) stands for
    the function it is named after."""
    obj = getattr(module, name)
    if isinstance(obj, types.ModuleType):
        inner = getattr(obj, name, None)
        if not (inspect.isfunction(inner) or inspect.isclass(inner)):
            return obj.__name__, obj
        obj = inner
    if inspect.isfunction(obj) or inspect.isclass(obj):
        return f"{obj.__module__}.{obj.__qualname__}", obj
    return None


def own_docstring(obj: object) -> str:
    """The object's own docstring: not a base class's, not a dataclass's generated one."""
    if isinstance(obj, types.ModuleType) or not inspect.isclass(obj):
        return (inspect.getdoc(obj) or "").strip()
    doc = (obj.__doc__ or "").strip()
    return "" if doc.startswith(f"{obj.__name__}(") else doc


def all_public() -> dict[str, tuple[str, object]]:
    """``"module.name"`` -> ``(identifier, object)`` for every public function, class, module."""
    import dspex_lab

    modules = list(PUBLIC_MODULES)
    modules += [m.__name__ for n in dspex_lab.__all__
                if isinstance(m := getattr(dspex_lab, n), types.ModuleType)]
    found: dict[str, tuple[str, object]] = {}
    for module_name in dict.fromkeys(modules):
        module = importlib.import_module(module_name)
        for name in public_names(module):
            target = documented_object(module, name)
            if target is not None:
                found[f"{module_name}.{name}"] = target
    return found


# -- the site ----------------------------------------------------------------------------------

def test_site_builds_with_every_page(site: Path) -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(nav: list) -> list[str]:
        out: list[str] = []
        for entry in nav:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            out += pages(value) if isinstance(value, list) else [value]
        return out

    missing = [p for p in pages(config["nav"])
               if not (site / p.removesuffix(".md").removesuffix("index")
                       / "index.html").exists()]
    assert not missing, f"nav pages not built: {missing}"
    assert (site / "search" / "search_index.json").exists()


def test_every_public_function_and_class_has_a_docstring_and_a_reference_entry(
        site: Path) -> None:
    known = inventory(site)
    undocumented, unreferenced = [], []
    for public, (ident, obj) in sorted(all_public().items()):
        if not own_docstring(obj):
            undocumented.append(public)
        if ident not in known:
            unreferenced.append(f"{public} ({ident})")
    assert not undocumented, f"public names without a docstring: {undocumented}"
    assert not unreferenced, (
        "public names missing from the API reference; add `::: <module>` to a page under "
        f"docs/reference/ (and the page to mkdocs.yml's nav): {unreferenced}")


def test_the_api_table_lists_every_export(site: Path) -> None:
    import dspex_lab

    page = (site / "reference" / "index.html").read_text()
    missing = [n for n in dspex_lab.__all__ if f"<code>{n}</code>" not in page]
    assert not missing, f"names of dspex_lab.__all__ missing from reference/index: {missing}"


def test_the_site_loads_nothing_from_the_network(site: Path) -> None:
    remote = re.compile(
        r"<(script|img|iframe)[^>]*\bsrc=[\"']https?://|"
        r"<link[^>]*\bhref=[\"']https?://|"
        r"url\([\"']?https?://|@import\s+[\"']https?://", re.I)
    found = []
    for path in site.rglob("*"):
        if path.suffix in (".html", ".css") and remote.search(path.read_text(errors="ignore")):
            found.append(str(path.relative_to(site)))
    assert not found, f"pages or stylesheets that fetch from the network: {found}"


def test_the_benchmarks_page_covers_every_script() -> None:
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    missing = [p.name for p in sorted((ROOT / "bench").glob("*.py"))
               if not p.name.startswith("_") and f"bench/{p.name}" not in page]
    assert not missing, f"docs/benchmarks.md does not say how to run: {missing}"


# -- tutorials -------------------------------------------------------------------------------

def notebook(path: Path, title: str, output: str) -> None:
    """A notebook whose code would fail if run; its saved output says ``output``."""
    path.write_text(json.dumps({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "cells": [
            {"cell_type": "markdown", "id": "a", "metadata": {}, "source": [f"# {title}\n"]},
            {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": 1,
             "source": ["raise SystemExit('this notebook was executed')"],
             "outputs": [{"output_type": "stream", "name": "stdout", "text": [output]}]},
        ],
    }))


def test_every_notebook_is_a_tutorial_page_listed_in_name_order(site: Path) -> None:
    names = [p.name for p in sorted((ROOT / "notebooks").glob("*.ipynb"))] + [CRAFTED]
    index = (site / "tutorials" / "index.html").read_text()
    positions = []
    for name in names:
        stem = name.removesuffix(".ipynb")
        assert (site / "tutorials" / stem / "index.html").exists(), name
        assert (site / "tutorials" / stem / name).exists(), f"{name}: no download copy"
        positions.append(index.index(f'href="{stem}/"'))
    assert positions == sorted(positions)
    assert "Saved, not run" in index


def test_notebooks_are_rendered_as_saved_not_executed(site: Path) -> None:
    page = (site / "tutorials" / CRAFTED.removesuffix(".ipynb") / "index.html").read_text()
    assert "saved output 42" in page  # the saved output, not the traceback of running it
    assert "Traceback" not in page


def test_no_tutorial_notebook_leaves_the_nav_and_files_alone(tmp_path: Path, monkeypatch
                                                               ) -> None:
    hooks = load_hooks()
    monkeypatch.setattr(hooks, "NOTEBOOKS", tmp_path / "absent")
    config = types.SimpleNamespace(nav=[{"Tutorials": ["tutorials/index.md"]}])
    assert hooks.on_config(config).nav == [{"Tutorials": ["tutorials/index.md"]}]
    files = ["a file"]
    assert hooks.on_files(files, config) == ["a file"]
    assert "No tutorial notebook yet" in hooks.tutorials_list()


# -- the docstring converter (docs/_hooks/griffe_markdown.py) ----------------------------------

@pytest.fixture(scope="module")
def to_markdown():
    spec = importlib.util.spec_from_file_location("griffe_markdown", HOOKS / "griffe_markdown.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.to_markdown


def test_doctest_lines_become_a_pycon_fence(to_markdown) -> None:
    text = "Add two numbers.\n>>> 1 + 1\n2\n\nDone."
    assert to_markdown(text) == "Add two numbers.\n\n```pycon\n>>> 1 + 1\n2\n```\n\nDone.\n"


def test_a_literal_block_becomes_a_text_fence(to_markdown) -> None:
    text = "The tree::\n\n    Base\n    └── Child\n\nAfter."
    assert to_markdown(text) == "The tree:\n\n```text\nBase\n└── Child\n```\n\nAfter.\n"


def test_a_simple_table_becomes_a_markdown_table(to_markdown) -> None:
    text = inspect.cleandoc("""
        Types:

        ==========  ==========================
        type        accepts
        ==========  ==========================
        ``int``     int, or a float with no
                    fractional part
        ``A | B``   the first member that fits
        ==========  ==========================
        """)
    assert to_markdown(text) == (
        "Types:\n\n| type | accepts |\n| --- | --- |\n"
        "| ``int`` | int, or a float with no fractional part |\n"
        "| ``A | B`` | the first member that fits |\n")


def test_a_fence_inside_a_list_item_keeps_the_item_indent(to_markdown) -> None:
    text = "- one input::\n\n      %%dspex q -> a\n      What?\n\nAfter."
    assert to_markdown(text) == (
        "- one input:\n\n  ```text\n  %%dspex q -> a\n  What?\n  ```\n\nAfter.\n")


def test_first_paragraph_is_joined_and_fences_are_left_alone(to_markdown) -> None:
    text = "A summary that\nwraps.\n\n```python\n>>> not touched\n```"
    assert to_markdown(text) == "A summary that wraps.\n\n```python\n>>> not touched\n```\n"

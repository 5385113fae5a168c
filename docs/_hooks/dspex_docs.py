"""MkDocs hooks of the dspex_lab site (``mkdocs.yml``: ``hooks``).

1. Tutorials: every ``notebooks/*.ipynb`` of the repository becomes a page
   ``tutorials/<name>.ipynb`` (rendered by mkdocs-jupyter, never executed), is added to the
   "Tutorials" section of the nav and listed on ``tutorials/index.md`` (marker
   ``<!-- tutorials -->``). No notebook yet: the index says so and the build still passes.
2. The public API table on ``reference/index.md`` (marker ``<!-- exports -->``) is built from
   ``dspex_lab.__all__``: one row per name, linked to where its docstring is rendered. A name
   whose module has no reference page is an unresolved cross-reference, which fails a
   ``--strict`` build: add the module to a page under ``docs/reference/``.
3. Offline pages: ``<script src="http...">`` (and empty ``src=""``) tags that nbconvert adds
   to notebook pages (MathJax, RequireJS) are dropped, so the site loads nothing from the
   network; LaTeX in notebooks shows as source.
"""

from __future__ import annotations

import html
import importlib
import inspect
import json
import os
import re
import tempfile
import types
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

NOTEBOOKS = Path(os.environ.get("DSPEX_DOCS_NOTEBOOKS")
                 or Path(__file__).resolve().parents[2] / "notebooks")  # env: for tests
TUTORIALS_DIR = "tutorials"
TUTORIALS_MARKER = "<!-- tutorials -->"
EXPORTS_MARKER = "<!-- exports -->"
_REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=[\"'](https?://[^\"']*)?[\"'][^>]*>\s*</script>",
                            re.I)


# -- tutorials ---------------------------------------------------------------------------------

def notebooks() -> list[Path]:
    """The tutorial notebooks, in file-name order (``01_...``, ``02_...``)."""
    if not NOTEBOOKS.is_dir():
        return []
    return sorted(p for p in NOTEBOOKS.glob("*.ipynb") if not p.name.startswith("."))


def notebook_title(path: Path) -> str:
    """The first Markdown heading of the notebook, else its file name made readable."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        cells = []
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else source
        for line in text.splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return re.sub(r"^\d+[_-]", "", path.stem).replace("_", " ").replace("-", " ").capitalize()


def _tutorial_uri(path: Path) -> str:
    return f"{TUTORIALS_DIR}/{path.name}"


def on_config(config: Any) -> Any:
    """Add each notebook under the nav's "Tutorials" section (after its index page)."""
    for entry in config.nav or []:
        if isinstance(entry, dict) and "Tutorials" in entry:
            section = entry["Tutorials"]
            known = {next(iter(e.values())) if isinstance(e, dict) else e for e in section}
            for path in notebooks():
                if _tutorial_uri(path) not in known:
                    section.append({notebook_title(path): _tutorial_uri(path)})
    return config


_STAGING: tempfile.TemporaryDirectory | None = None


@event_priority(100)  # before mkdocs-jupyter turns .ipynb files into pages
def on_files(files: Files, config: Any) -> Files:
    """Make every notebook a documentation file at ``tutorials/<name>.ipynb``.

    mkdocs-jupyter reads a page from ``src_dir/src_uri``, so each notebook is linked into a
    temporary ``tutorials/`` directory (removed when MkDocs shuts down)."""
    global _STAGING
    found = notebooks()
    if not found:
        return files
    on_shutdown()
    _STAGING = tempfile.TemporaryDirectory(prefix="dspex-docs-")
    (Path(_STAGING.name) / TUTORIALS_DIR).mkdir()
    for path in found:
        uri = _tutorial_uri(path)
        if files.get_file_from_path(uri) is None:
            os.symlink(path, Path(_STAGING.name) / uri)
            files.append(File(uri, _STAGING.name, config.site_dir, config.use_directory_urls))
    return files


def on_shutdown() -> None:
    global _STAGING
    if _STAGING is not None:
        _STAGING.cleanup()
        _STAGING = None


def tutorials_list() -> str:
    found = notebooks()
    if not found:
        return ("!!! note \"No tutorial notebook yet\"\n"
                "    Notebooks saved in `notebooks/` appear here on the next build.\n")
    # mkdocs-jupyter copies each notebook next to its page (include_source)
    return "\n".join(f"1. [{notebook_title(p)}]({p.name}) — `notebooks/{p.name}` "
                     f'(<a href="{p.stem}/{p.name}" download>download</a>)'
                     for p in found) + "\n"


# -- the public API table ----------------------------------------------------------------------

def _summary(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    first = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    return first.replace("|", "\\|")


def _target(package: types.ModuleType, name: str) -> tuple[str, Any] | None:
    """``(identifier, object)`` of a public name, or None for a plain value."""
    obj = getattr(package, name)
    if isinstance(obj, types.ModuleType):
        inner = getattr(obj, name, None)  # a callable module (dspex_lab.evaluate): its function
        if inspect.isfunction(inner) or inspect.isclass(inner):
            obj = inner
        else:
            return obj.__name__, obj
    if inspect.isfunction(obj) or inspect.isclass(obj):
        return f"{obj.__module__}.{obj.__qualname__}", obj
    return None


def exports_table() -> str:
    """One row per name of ``dspex_lab.__all__``: link, kind, first docstring paragraph."""
    import dspex_lab

    rows = ["| name | kind | what |", "| --- | --- | --- |"]
    for name in dspex_lab.__all__:
        found = _target(dspex_lab, name)
        if found is None:
            value = html.escape(repr(getattr(dspex_lab, name)))
            rows.append(f"| `{name}` | value | `{value}` |")
            continue
        ident, obj = found
        kind = ("module" if isinstance(obj, types.ModuleType)
                else "class" if inspect.isclass(obj) else "function")
        rows.append(f"| [`{name}`][{ident}] | {kind} | {_summary(obj)} |")
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if TUTORIALS_MARKER in markdown:
        markdown = markdown.replace(TUTORIALS_MARKER, tutorials_list())
    if EXPORTS_MARKER in markdown:
        importlib.invalidate_caches()
        markdown = markdown.replace(EXPORTS_MARKER, exports_table())
    return markdown


# -- offline -----------------------------------------------------------------------------------

def on_post_page(output: str, page: Any, config: Any) -> str:
    """Drop remote or empty ``<script src=...>`` tags (nbconvert's MathJax/RequireJS)."""
    return _REMOTE_SCRIPT.sub("", output)

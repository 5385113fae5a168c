"""Conformance suite setup: this directory's helper modules (``programs``, ``compare``) import
by their plain names, whether or not the directory is a package."""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

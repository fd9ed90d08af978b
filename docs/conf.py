"""Sphinx configuration for txamqp091 (builds offline, warnings are errors in CI)."""

from __future__ import annotations

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "docs", "_ext"))

_version: dict[str, str] = {}
with open(os.path.join(ROOT, "txamqp091", "_version.py"), encoding="utf-8") as f:
    exec(f.read(), _version)

project = "txamqp091"
author = "The txamqp091 developers"
copyright = "2026, The txamqp091 developers"
release = _version["__version__"]
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "txamqp091_api"]

# No intersphinx: the build must not touch the network.
nitpicky = False
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"

exclude_patterns = ["_build"]
html_theme = "alabaster"

# linkcheck: the build machine has no network, so only links inside these docs are
# checked (``:doc:`` and ``:ref:`` targets also fail the -W build when broken).
linkcheck_ignore = [r"https?://", r"mailto:"]

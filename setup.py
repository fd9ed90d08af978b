"""Thin shim: metadata lives in pyproject.toml.

``packages`` is listed here because ``twisted.plugins`` must ship without an
``__init__.py`` (it would clobber Twisted's own) and so cannot be discovered.
"""

from __future__ import annotations

from setuptools import setup

setup(
    packages=[
        "txamqp091",
        "txamqp091.core",
        "txamqp091.client",
        "txamqp091.twisted",
        "txamqp091.tornado",
        "twisted.plugins",
    ],
)

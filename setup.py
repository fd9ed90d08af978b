"""Thin shim: metadata lives in pyproject.toml.

``packages`` is listed here because ``twisted.plugins`` must ship without an
``__init__.py`` (it would clobber Twisted's own) and so cannot be discovered.

The optional C accelerator ``txamqp091.core._speedups`` is built when a C
compiler and the Python headers are present; if the build fails the package
installs as pure Python (see ``txamqp091/core/_accel.py``). Environment:
``TXAMQP091_NO_EXTENSIONS=1`` skips the build, ``TXAMQP091_REQUIRE_EXTENSIONS=1``
makes a failed build an error.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


class OptionalBuildExt(build_ext):
    """build_ext that warns and carries on without the extension when it cannot build it."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            self._skip(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)

    def _skip(self, exc: Exception) -> None:
        if _flag("TXAMQP091_REQUIRE_EXTENSIONS"):
            raise exc
        print(
            f"warning: txamqp091's C accelerator was not built ({exc}); "
            "installing the pure-Python implementation",
            file=sys.stderr,
        )


ext_modules = []
if not _flag("TXAMQP091_NO_EXTENSIONS") and sys.implementation.name == "cpython":
    ext_modules.append(
        Extension(
            "txamqp091.core._speedups",
            sources=["txamqp091/core/_speedups.c"],
            depends=[
                "txamqp091/core/_speedups_tables.h",
                "txamqp091/core/_speedups_fieldtable.h",
                "txamqp091/core/_speedups_properties.h",
                "txamqp091/core/_speedups_await.h",
                "txamqp091/core/_speedups_resume.h",
                "txamqp091/core/_speedups_flush.h",
                "txamqp091/core/_speedups_acks.h",
                "txamqp091/core/_speedups_fire.h",
                "txamqp091/core/_speedups_ack.h",
                "txamqp091/core/_speedups_settle.h",
            ],
            optional=not _flag("TXAMQP091_REQUIRE_EXTENSIONS"),
        )
    )

setup(
    packages=[
        "txamqp091",
        "txamqp091.core",
        "txamqp091.client",
        "txamqp091.twisted",
        "txamqp091.tornado",
        "twisted.plugins",
    ],
    ext_modules=ext_modules,
    cmdclass={"build_ext": OptionalBuildExt},
)

"""The core, its testing helpers and the package root import no event loop."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = """
import json, sys
import txamqp091
import txamqp091.core
import txamqp091.core.connection
import txamqp091.core.channel
import txamqp091.core.testing
loaded = sorted(
    name for name in sys.modules
    if name.split(".")[0] in ("twisted", "tornado", "asyncio", "zope")
)
print(json.dumps(loaded))
"""


def test_core_imports_no_event_loop() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(result.stdout) == []


def test_the_check_would_notice_an_event_loop() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import asyncio\n" + CHECK],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "asyncio" in json.loads(result.stdout)

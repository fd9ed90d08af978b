"""The twistd plugin: discoverable, cheap to import, and its options validated."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from twisted.python import usage

from txamqp091.twisted import tap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_plugin_is_found_by_twistd_plugin_discovery() -> None:
    code = (
        "from twisted.plugin import getPlugins\n"
        "from twisted.application.service import IServiceMaker\n"
        "import sys\n"
        "names = [p.tapname for p in getPlugins(IServiceMaker)]\n"
        "assert 'amqp-consumer' in names, names\n"
        "assert 'txamqp091.twisted.tap' not in sys.modules\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_no_init_under_twisted_plugins() -> None:
    assert not os.path.exists(os.path.join(ROOT, "twisted", "__init__.py"))
    assert not os.path.exists(os.path.join(ROOT, "twisted", "plugins", "__init__.py"))


def test_options_parse_a_complete_command_line() -> None:
    options = tap.Options()
    options.parseOptions(
        [
            "--url", "amqp://guest:guest@localhost/%2F?heartbeat=10",
            "--queue", "orders",
            "--handler", "examples.demo_handler:handle",
            "--prefetch", "7",
            "--threads", "2",
            "--on-error", "reject",
        ]
    )  # fmt: skip
    assert options["queue"] == "orders"
    assert options["prefetch"] == 7
    assert options["params"][0].heartbeat == 10
    assert callable(options["handler_fn"])
    service = tap.makeService(options)
    consumer = service.consumer  # type: ignore[attr-defined]
    assert isinstance(consumer, tap.ConsumerService)
    assert consumer.requeue_on_error is False
    assert consumer.threads == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--handler", "examples.demo_handler:handle"], "--queue is required"),
        (["--queue", "q"], "--handler is required"),
        (["--queue", "q", "--handler", "nodots"], "package.module:callable"),
        (["--queue", "q", "--handler", "no_such_module_xyz:f"], "cannot import"),
        (["--queue", "q", "--handler", "examples.demo_handler:nope"], "has no"),
        (
            ["--queue", "q", "--handler", "examples.demo_handler:handle", "--on-error", "x"],
            "--on-error",
        ),
        (
            ["--queue", "q", "--handler", "examples.demo_handler:handle", "--url", "http://x"],
            "--url",
        ),
    ],
)
def test_options_reject_bad_command_lines(argv: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        tap.Options().parseOptions(argv)

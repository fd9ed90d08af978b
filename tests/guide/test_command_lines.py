"""The consumer service's command lines and config file, as the docs show them.

Every ``twistd ... amqp-consumer ...`` command in a ``code-block:: text`` of the
guide pages is parsed by the plugin's own ``Options`` (so a renamed or misspelt
option in the docs fails here), and ``examples/guide/orders-consumer.toml``, the
file ``docs/consumer-service.rst`` includes, is loaded by ``--config``. No broker:
nothing is started, only parsed and built.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from txamqp091.twisted.consumer_service import make_service
from txamqp091.twisted.consumer_service.options import ENV_URL, Options

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "examples" / "guide"
PAGES = ["consumer-service.rst", "twisted.rst"]


@pytest.fixture(autouse=True)
def _myapp_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The docs' ``--handler myapp.consumers:handle`` is examples/guide/myapp."""
    monkeypatch.syspath_prepend(str(GUIDE))
    monkeypatch.delenv(ENV_URL, raising=False)


def text_blocks(page: str) -> list[str]:
    """The bodies of the page's ``.. code-block:: text`` directives, dedented."""
    lines = (ROOT / "docs" / page).read_text().splitlines()
    blocks, index = [], 0
    while index < len(lines):
        if lines[index].strip() == ".. code-block:: text":
            index += 1
            body = []
            while index < len(lines) and (not lines[index] or lines[index].startswith("   ")):
                body.append(lines[index].strip())
                index += 1
            blocks.append("\n".join(body).strip())
        index += 1
    return blocks


def consumer_commands() -> list[tuple[str, list[str]]]:
    """(page, argv after ``amqp-consumer``) for each command the guide pages show."""
    found = []
    for page in PAGES:
        for block in text_blocks(page):
            for command in re.split(r"\n(?=\S)", block.replace("\\\n", " ")):
                words = shlex.split(command)
                if "amqp-consumer" in words:
                    found.append((page, words[words.index("amqp-consumer") + 1 :]))
    return found


COMMANDS = consumer_commands()


def test_the_pages_show_commands() -> None:
    assert {page for page, _ in COMMANDS} == set(PAGES) and len(COMMANDS) >= 3


@pytest.mark.parametrize(
    ("page", "argv"), COMMANDS, ids=[f"{p}-{i}" for i, (p, _) in enumerate(COMMANDS)]
)
def test_every_documented_command_parses_and_builds(page: str, argv: list[str]) -> None:
    options = Options()
    options.parseOptions(argv)
    make_service(options)


def test_the_documented_config_file_is_what_the_service_reads() -> None:
    options = Options()
    options.parseOptions(["--config", str(GUIDE / "orders-consumer.toml")])
    assert options["queue"] == "orders"
    assert options["handler"] == "myapp.consumers:handle"
    assert (options["prefetch"], options["concurrency"]) == (50, 20)
    assert options["declare"] and options["exchange"] == "orders"
    assert options["exchange-type"] == "topic"
    assert options["routing-key"] == ["order.created", "order.updated"]
    assert options["queue_arguments"] == {
        "x-max-length": 100000,
        "x-overflow": "reject-publish",
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "orders.dlx",
    }
    assert (options["max-redeliveries"], options["requeue-delay"]) == (5, 2.0)
    assert (options["health-port"], options["shutdown-grace"]) == (8080, 30.0)
    assert options["log-format"] == "json"
    consumer = make_service(options).consumer  # type: ignore[attr-defined]
    assert consumer.dead_lettering is True and consumer.concurrency == 20


def test_flags_on_the_command_line_win_over_the_file() -> None:
    options = Options()
    options.parseOptions(["--config", str(GUIDE / "orders-consumer.toml"), "--prefetch", "100"])
    assert options["prefetch"] == 100 and options["queue"] == "orders"

"""The README's Python examples, run as a reader would paste them.

Each ``.. code-block:: python`` in ``README.rst`` is a whole program ending in a
``# prints: ...`` comment: the test runs it against the real broker (in a private
virtual host, by rewriting the README's localhost URL) and compares the last line it
printed. A README example that stops working, or prints something else, fails here.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from .programs import ROOT, private_vhost, run

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl"),
]

README_URL = "amqp://guest:guest@localhost/"
PRINTS = "# prints: "


def python_blocks() -> list[tuple[int, str]]:
    """(line number, dedented source) of each ``.. code-block:: python`` in the README."""
    lines = (ROOT / "README.rst").read_text().splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        if lines[index].strip() == ".. code-block:: python":
            start = index + 1
            index += 1
            body = []
            while index < len(lines) and (not lines[index] or lines[index].startswith("   ")):
                body.append(lines[index])
                index += 1
            blocks.append((start, textwrap.dedent("\n".join(body)).strip() + "\n"))
        else:
            index += 1
    return blocks


BLOCKS = python_blocks()


@pytest.fixture(scope="module")
def vhost_url() -> Iterator[str]:
    yield from private_vhost()


def test_the_readme_shows_one_example_per_face() -> None:
    sources = [source for _, source in BLOCKS]
    assert len(sources) >= 4
    for face in ("txamqp091.twisted", "txamqp091.tornado", "txamqp091 import blocking"):
        assert any(face in source for source in sources), face


@pytest.mark.parametrize(("line", "source"), BLOCKS, ids=[f"line{n}" for n, _ in BLOCKS])
def test_readme_example_runs_and_prints_what_it_says(
    line: int, source: str, vhost_url: str, tmp_path: Path
) -> None:
    last = source.rstrip().splitlines()[-1]
    assert last.startswith(PRINTS), f"README line {line}: the block must end in '{PRINTS}...'"
    assert README_URL in source, f"README line {line}: the block must use {README_URL}"
    program = tmp_path / f"readme_line{line}.py"
    program.write_text(source.replace(README_URL, vhost_url))
    output = run(program, [], vhost_url, timeout=30.0)
    assert output, f"README line {line} printed nothing"
    assert output[-1] == last[len(PRINTS) :]


def test_the_readme_renders_without_warnings() -> None:
    """PyPI renders the README with docutils and shows raw text on any warning."""
    import docutils.core
    import docutils.utils

    source = (ROOT / "README.rst").read_text()
    try:
        docutils.core.publish_string(
            source,
            writer="null",
            settings_overrides={"halt_level": 2, "report_level": 2, "warning_stream": False},
        )
    except docutils.utils.SystemMessage as error:
        pytest.fail(f"README.rst: {error}")

"""``twistd amqp-consumer`` options: every flag, --config under the flags, clear refusals."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
from twisted.python import usage

from txamqp091.twisted.consumer_service import make_service
from txamqp091.twisted.consumer_service.options import ENV_URL, Options, parse_queue_arg
from txamqp091.types import Int64

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ["--queue", "orders", "--handler", "examples.demo_handler:handle"]


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)


def parse(argv: list[str]) -> Options:
    options = Options()
    options.parseOptions(argv)
    return options


def test_every_option_on_the_command_line() -> None:
    options = parse(
        [
            *HANDLER,
            "--url", "amqp://u:p@node1:5673/%2F?heartbeat=10",
            "-u", "amqp://u:p@node2/%2F",
            "--connection-name", "orders-worker",
            "--prefetch", "20", "--concurrency", "5", "--threads", "3",
            "--declare", "--queue-type", "quorum",
            "--queue-arg", "x-max-length=1000", "--queue-arg", "x-overflow=reject-publish",
            "--queue-arg", "x-single-active-consumer=true", "--queue-arg", 'x-note="42"',
            "--exchange", "ex", "--exchange-type", "topic",
            "--routing-key", "a.*", "--routing-key", "b.#",
            "--dead-letter-exchange", "dlx",
            "--on-error", "reject", "--max-redeliveries", "3", "--requeue-delay", "1.5",
            "--health-port", "8081", "--shutdown-grace", "2", "--log-format", "json",
        ]
    )  # fmt: skip
    nodes = options["params"]
    assert [(p.host, p.port) for p in nodes] == [("node1", 5673), ("node2", 5672)]
    assert nodes[0].heartbeat == 10
    assert all(p.connection_name == "orders-worker" for p in nodes)
    assert (options["prefetch"], options["concurrency"], options["threads"]) == (20, 5, 3)
    assert options["queue_arguments"] == {
        "x-max-length": 1000,
        "x-overflow": "reject-publish",
        "x-single-active-consumer": True,
        "x-note": "42",
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "dlx",
    }
    assert options["routing-key"] == ["a.*", "b.#"]
    assert options["max-redeliveries"] == 3 and options["requeue-delay"] == 1.5
    assert options["shutdown-grace"] == 2.0 and options["health-port"] == 8081
    root = make_service(options)
    consumer = root.consumer  # type: ignore[attr-defined]
    assert consumer.concurrency == 5 and consumer.requeue_on_error is False
    assert consumer.dead_lettering is True
    assert consumer.declare.exchange == "ex" and consumer.declare.exchange_type == "topic"
    assert len(list(root)) == 2  # the consumer and the health server


def test_defaults() -> None:
    options = parse(HANDLER)
    assert [(p.host, p.port) for p in options["params"]] == [("localhost", 5672)]
    assert options["concurrency"] == options["prefetch"] == 50
    assert options["max-redeliveries"] == 5 and options["on-error"] == "requeue"
    consumer = make_service(options).consumer  # type: ignore[attr-defined]
    assert consumer.declare is None and consumer.dead_lettering is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("k=1", ("k", 1)),
        ("k=1.5", ("k", 1.5)),
        ("k=FALSE", ("k", False)),
        ("k=text", ("k", "text")),
        ("k='7'", ("k", "7")),
        ("k=", ("k", "")),
    ],
)
def test_queue_arg_values_are_typed(text: str, expected: tuple[str, object]) -> None:
    assert parse_queue_arg(text) == expected


def test_the_environment_keeps_urls_out_of_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_URL, "amqp://u:secret@envnode1/, amqp://u:secret@envnode2/")
    options = parse(HANDLER)
    assert [p.host for p in options["params"]] == ["envnode1", "envnode2"]
    # A flag wins over the environment.
    assert [p.host for p in parse([*HANDLER, "--url", "amqp://flag/"])["params"]] == ["flag"]


def test_url_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "urls"
    path.write_text("# the cluster\namqp://u:p@a/\n\n  amqp://u:p@b/  # second\n")
    monkeypatch.setenv(ENV_URL, "amqp://env/")
    options = parse([*HANDLER, "--url-file", str(path)])
    assert [p.host for p in options["params"]] == ["a", "b"]


def test_config_file_under_the_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "consumer.toml"
    config.write_text(
        'url = ["amqp://u:p@cfg1/", "amqp://u:p@cfg2/"]\n'
        'queue = "from-config"\n'
        'handler = "examples.demo_handler:handle"\n'
        "prefetch = 10\n"
        "max_redeliveries = 2\n"
        "requeue-delay = 3\n"
        "declare = true\n"
        'queue-type = "quorum"\n'
        'queue-arg = { x-max-length = 500, x-overflow = "drop-head" }\n'
        'routing-key = "rk"\n'
        'exchange = "ex"\n'
    )
    options = parse(["--config", str(config), "--prefetch", "30", "--routing-key", "flag-rk"])
    assert options["queue"] == "from-config"
    assert options["prefetch"] == 30  # the flag wins
    assert options["max-redeliveries"] == 2 and options["requeue-delay"] == 3.0
    assert options["routing-key"] == ["flag-rk"]  # a repeatable flag replaces the file's list
    assert [p.host for p in options["params"]] == ["cfg1", "cfg2"]
    assert options["queue_arguments"] == {
        "x-max-length": 500,
        "x-overflow": "drop-head",
        "x-queue-type": "quorum",
    }
    assert [p.host for p in parse([f"--config={config}", "-u", "amqp://x/"])["params"]] == ["x"]
    # The environment wins over the file (it is how secrets reach a container).
    monkeypatch.setenv(ENV_URL, "amqp://env/")
    assert [p.host for p in parse(["--config", str(config)])["params"]] == ["env"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prefech = 5\n", "'prefech' is not an amqp-consumer option"),
        ("prefetch = 'many'\n", "'prefetch'"),
        ("declare = 'yes'\n", "'declare' must be true or false"),
        ("url = 5\n", "'url' must be a string or a list"),
        ("queue = [\n", "not valid TOML"),
    ],
)
def test_config_file_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(usage.UsageError, match=message):
        parse([*HANDLER, "--config", str(config)])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*HANDLER, "--prefetch", "-1"], "prefetch"),
        ([*HANDLER, "--prefetch", "many"], "prefetch"),
        ([*HANDLER, "--queue-type", "lazy", "--declare"], "--queue-type must be one of"),
        ([*HANDLER, "--queue-type", "quorum"], "--queue-type needs --declare"),
        ([*HANDLER, "--exchange", "ex"], "--exchange needs --declare"),
        ([*HANDLER, "--declare", "--routing-key", "rk"], "--routing-key needs --exchange"),
        ([*HANDLER, "--declare", "--queue-arg", "novalue"], "--queue-arg must look like"),
        ([*HANDLER, "--log-format", "xml"], "--log-format must be one of"),
        ([*HANDLER, "--prefetch", "5", "--concurrency", "9"], "--concurrency 9 is more"),
        ([*HANDLER, "--url", "amqp://u:hunter2@h:notaport/"], r"--url: amqp://u:\*\*\*@h"),
        ([*HANDLER, "--url-file", "/nonexistent/urls"], "--url-file /nonexistent/urls"),
        ([*HANDLER, "--config", "/nonexistent/c.toml"], "--config /nonexistent/c.toml"),
        (["--queue", "q", "--handler", "examples.demo_handler:nope"], "has no 'nope'"),
        (["--queue", "q", "--handler", "no_such_module_xyz:f"], "cannot import"),
        ([*HANDLER, "--no-such-flag"], "no-such-flag"),
        (
            ["--queue", "q", "--handler", "txamqp091.handlers:http_forward"],
            "txamqp091.handlers:http_forward: --forward-url is required",
        ),
        (
            [
                "--queue",
                "q",
                "--handler",
                "txamqp091.handlers:http_forward",
                "--forward-url",
                "ftp://x/",
            ],
            "--forward-url must be an http",
        ),
    ],
)
def test_bad_command_lines_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        parse(argv)


def test_help_is_plain_text() -> None:
    text = str(Options())
    assert "--max-redeliveries" in text and "--health-port" in text
    assert "::" not in text and "``" not in text and ":class:" not in text
    # The description keeps its paragraphs and its example (Twisted would reflow them).
    assert "\n\nSIGTERM stops consuming" in text
    assert "\nExample:\n  twistd -n amqp-consumer" in text


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_twistd_help_lists_the_plugin_with_one_line() -> None:
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, twistd, "--help"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if "amqp-consumer" in line]
    assert len(lines) == 1, proc.stdout
    assert "Consume an AMQP queue with a handler" in lines[0]


def test_loading_the_plugin_and_its_options_imports_no_web_treq_or_prometheus() -> None:
    code = (
        "import sys\n"
        "from twisted.plugin import getPlugins\n"
        "from twisted.application.service import IServiceMaker\n"
        "maker = [p for p in getPlugins(IServiceMaker) if p.tapname == 'amqp-consumer'][0]\n"
        "heavy = ('twisted.web', 'treq', 'prometheus_client')\n"
        "assert not [m for m in sys.modules if m.startswith(heavy)], 'plugin'\n"
        "maker.options().getUsage()\n"
        "loaded = [m for m in sys.modules if m.startswith(heavy)]\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


# -- streams ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("first", "first"),
        ("last", "last"),
        ("next", "next"),
        ("7D", "7D"),
        ("30m", "30m"),
        ("0", 0),
        ("12345", 12345),
        (
            "2026-12-05T21:00:00Z",
            datetime.datetime(2026, 12, 5, 21, tzinfo=datetime.timezone.utc),
        ),
        ("2026-12-05T21:00:00", datetime.datetime(2026, 12, 5, 21, tzinfo=datetime.timezone.utc)),
    ],
)
def test_stream_offsets_rabbitmq_takes(given: str, expected: object) -> None:
    options = parse([*HANDLER, "--declare", "--queue-type", "stream", "--stream-offset", given])
    assert options["stream"] and options["stream-offset"] == expected
    if isinstance(expected, int):
        # An offset goes out as a 64-bit integer (RabbitMQ tells offsets by the type).
        assert isinstance(options["stream-offset"], Int64)
    service = make_service(options).consumer  # type: ignore[attr-defined]
    assert service.stream and service.stream_offset == expected


def test_a_declared_stream_reads_from_next_by_default() -> None:
    options = parse([*HANDLER, "--declare", "--queue-type", "stream"])
    assert options["stream"] and options["stream-offset"] == "next"
    assert not parse(HANDLER)["stream"]
    assert make_service(parse(HANDLER)).consumer.stream_offset is None  # type: ignore[attr-defined]


def test_stream_offset_alone_consumes_an_existing_stream() -> None:
    options = parse([*HANDLER, "--stream-offset", "first"])
    assert options["stream"] and not options["declare"]
    assert "x-queue-type" not in options["queue_arguments"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stream-offset", "-1"], "--stream-offset must be first, last, next"),
        (["--stream-offset", "yesterday"], "got 'yesterday'"),
        (["--declare", "--stream-offset", "first"], "--stream-offset needs a stream"),
        (["--declare", "--queue-type", "quorum", "--stream-offset", "0"], "needs a stream"),
        (["--stream-offset", "first", "--prefetch", "0"], "--stream-offset needs a --prefetch"),
    ],
)
def test_wrong_stream_offsets_are_refused_by_name(argv: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        parse([*HANDLER, *argv])


def test_stream_offset_from_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        'queue-type = "stream"\ndeclare = true\nstream-offset = 2026-12-05T21:00:00Z\n'
    )
    options = parse([*HANDLER, "--config", str(config)])
    assert options["stream-offset"] == datetime.datetime(
        2026, 12, 5, 21, tzinfo=datetime.timezone.utc
    )
    config.write_text('queue-type = "stream"\ndeclare = true\nstream-offset = 42\n')
    assert parse([*HANDLER, "--config", str(config)])["stream-offset"] == 42
    assert (
        parse([*HANDLER, "--config", str(config), "--stream-offset", "last"])["stream-offset"]
        == "last"
    )


def test_a_health_port_in_use_is_one_line_and_status_1(tmp_path: Path) -> None:
    import socket

    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Nothing listens on this broker port: the service must stop before connecting.
        proc = subprocess.run(
            [sys.executable, twistd, "--nodaemon", "--pidfile=", "--logfile=-", "amqp-consumer",
             *HANDLER, "--url", "amqp://guest:guest@127.0.0.1:9/%2F",
             "--health-port", str(port)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out and "CannotListenError" not in out, out
    errors = [line for line in out.splitlines() if f"--health-port {port}" in line]
    assert len(errors) == 1, out
    assert "cannot listen" in errors[0] and "in use" in errors[0], out
    assert "127.0.0.1:9" not in out  # it never tried the broker

"""connect(): deadlines, node lists, retries, authentication, TLS, connection names."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gc
import logging
import socket
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.tornado_adapter.support import AMQP_URL, rabbitmqctl_connection_pid
from txamqp091 import ConnectionParameters, PlainCredentials
from txamqp091.exceptions import AMQPConnectionError, ProbableAuthenticationError
from txamqp091.params import SSLOptions
from txamqp091.tornado import Connection, connect

pytestmark = pytest.mark.asyncio


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def silent_server(**kwargs: object) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A peer that accepts TCP and never speaks; yields its port and what each client sent."""
    received: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        data = b""
        with contextlib.suppress(Exception):
            while chunk := await reader.read(4096):
                data += chunk
        received.append(data)  # appended once the client has gone

    server = await asyncio.start_server(handle, "127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, received
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.broker
async def test_connect_with_a_url_and_with_parameters() -> None:
    conn = await connect(f"{AMQP_URL}?heartbeat=7&frame_max=8192&channel_max=99")
    try:
        assert isinstance(conn, Connection) and conn.is_open and not conn.is_blocked
        assert conn.server_properties["product"] == b"RabbitMQ" or conn.server_properties[
            "product"
        ] in ("RabbitMQ",)
        negotiated = conn.negotiated
        assert (negotiated.heartbeat, negotiated.frame_max, negotiated.channel_max) == (
            7,
            8192,
            99,
        )
    finally:
        assert await conn.close() is None
    assert not conn.is_open and conn.is_closed
    assert await conn.closed is None
    assert await conn.close() is None

    conn = await connect(ConnectionParameters(host="127.0.0.1", heartbeat=0))
    assert conn.negotiated.heartbeat == 0
    await conn.close()


async def test_a_peer_that_never_speaks_fails_within_stack_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    async with silent_server() as (port, received):
        start = loop.time()
        with pytest.raises(AMQPConnectionError) as info:
            await connect(f"amqp://guest:guest@127.0.0.1:{port}/?stack_timeout=0.5")
        elapsed = loop.time() - start
        assert 0.45 <= elapsed < 2.0, elapsed
        assert "stack_timeout=0.5" in str(info.value)
        assert f"127.0.0.1:{port}" in str(info.value)
        for _ in range(100):  # the attempt's socket was aborted, not left open
            if received:
                break
            await asyncio.sleep(0.01)
        assert received == [b"AMQP\x00\x00\x09\x01"]
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
        await asyncio.sleep(0)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_each_node_and_attempt_is_tried_then_one_error_names_them_all() -> None:
    first, second = closed_port(), closed_port()
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(AMQPConnectionError) as info:
        await connect(
            [
                f"amqp://guest:guest@127.0.0.1:{first}/?connection_attempts=2&retry_delay=0.1",
                f"amqp://guest:guest@127.0.0.1:{second}/?retry_delay=5",
            ]
        )
    elapsed = loop.time() - start
    # One retry delay between node 1's two attempts; none before moving on to node 2.
    assert 0.1 <= elapsed < 2.0, elapsed
    text = str(info.value)
    assert text.startswith("could not connect")
    assert text.count(f"127.0.0.1:{first}") >= 2 and f"127.0.0.1:{second}" in text


@pytest.mark.broker
async def test_a_list_of_urls_falls_through_to_the_first_that_answers() -> None:
    port = closed_port()
    conn = await connect(
        [f"amqp://guest:guest@127.0.0.1:{port}/", AMQP_URL],
    )
    try:
        assert conn.is_open and conn.params.port != port
        ch = await conn.channel()
        assert (await ch.queue_declare("", exclusive=True)).queue
    finally:
        await conn.close()


@pytest.mark.broker
async def test_bad_credentials_are_not_retried() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    params = ConnectionParameters(
        host="127.0.0.1",
        credentials=PlainCredentials("guest", "wrong-password"),
        connection_attempts=3,
        retry_delay=5,
    )
    with pytest.raises(ProbableAuthenticationError):
        await connect([params, AMQP_URL])
    assert loop.time() - start < 4.0


@pytest.mark.broker
async def test_connection_name_shows_up_in_the_broker() -> None:
    name = f"txamqp091-tornado-{uuid.uuid4().hex}"
    conn = await connect(f"{AMQP_URL}?connection_name={name}")
    try:
        pid = await asyncio.to_thread(rabbitmqctl_connection_pid, name)
        assert pid is not None, f"{name} not in rabbitmqctl list_connections client_properties"
    finally:
        await conn.close()


# -- TLS ---------------------------------------------------------------------------------------


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a ``localhost`` server certificate signed by it: (ca, cert, key) PEM files."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common: str) -> object:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("txamqp091 test CA"))
        .issuer_name(name("txamqp091 test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest_asyncio.fixture
async def tls_proxy(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """A TLS endpoint (certificate for ``localhost``) relaying to the plain broker."""
    ca, cert, key = make_certificates(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    broker_host, broker_port = ("127.0.0.1", 5672)
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(broker_host, broker_port)
        for coro in (pipe(reader, up_writer), pipe(up_reader, writer)):
            task = asyncio.ensure_future(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    yield port, ca
    server.close()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await server.wait_closed()


@pytest.mark.broker
async def test_tls_round_trip_checks_the_server_name(tls_proxy: tuple[int, Path]) -> None:
    port, ca = tls_proxy
    context = ssl.create_default_context(cafile=str(ca))
    params = ConnectionParameters(
        host="127.0.0.1", port=port, ssl_options=SSLOptions(context, server_hostname="localhost")
    )
    conn = await connect(params)
    try:
        ch = await conn.channel()
        ok = await ch.queue_declare("", exclusive=True)
        await ch.confirm_delivery()
        await ch.basic_publish("", ok.queue, b"over tls")
        message = await ch.basic_get(ok.queue, auto_ack=True)
        assert message is not None and message.body == b"over tls"
        transport = conn._runtime.transport  # type: ignore[attr-defined]
        assert transport.get_extra_info("ssl_object") is not None
    finally:
        await conn.close()

    # The certificate is for "localhost": any other name fails verification.
    wrong = params.replace(ssl_options=SSLOptions(context, server_hostname="not-localhost"))
    with pytest.raises(AMQPConnectionError) as info:
        await connect(wrong)
    assert "certificate" in str(info.value).lower() or "hostname" in str(info.value).lower()


async def test_tls_to_a_silent_peer_is_bounded_by_stack_timeout() -> None:
    async with silent_server() as (port, _):
        params = ConnectionParameters(
            host="127.0.0.1",
            port=port,
            ssl_options=SSLOptions(ssl.create_default_context(), server_hostname="localhost"),
            stack_timeout=0.4,
        )
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(AMQPConnectionError, match="stack_timeout"):
            await connect(params)
        assert loop.time() - start < 2.0


async def test_bad_parameters_raise_value_error_naming_the_option() -> None:
    with pytest.raises(ValueError, match="bogus"):
        await connect("amqp://guest:guest@127.0.0.1/?bogus=1")
    with pytest.raises(ValueError, match="heartbeat"):
        await connect("amqp://guest:guest@127.0.0.1/?heartbeat=-1")

"""amqps:// through a loopback TLS endpoint of the tests' own.

The local broker has no TLS listener, so the test terminates TLS itself: a
Twisted TLS server on 127.0.0.1 with a certificate for ``localhost`` signed by
a throwaway CA, forwarding the plaintext to the broker. The client must check
the broker's name against that certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import uuid
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.internet import ssl as tssl
from twisted.protocols.portforward import ProxyFactory

from txamqp091.exceptions import AMQPConnectionError
from txamqp091.twisted import connect

pytestmark = pytest.mark.broker


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(directory: Path) -> tuple[Path, bytes]:
    """A CA certificate file and a PEM (key + certificate) for the server ``localhost``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("txamqp091 test CA"))
        .issuer_name(_name("txamqp091 test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ) + cert.public_bytes(serialization.Encoding.PEM)
    return ca_path, server_pem


@pytest.fixture
def tls_proxy(tmp_path: Path) -> Any:
    ca_path, server_pem = make_pki(tmp_path)
    server_cert = tssl.PrivateCertificate.loadPEM(server_pem)
    port = reactor.listenSSL(  # type: ignore[attr-defined]
        0, ProxyFactory("127.0.0.1", 5672), server_cert.options(), interface="127.0.0.1"
    )
    yield ca_path, port.getHost().port
    port.stopListening()


@pytest_twisted.ensureDeferred
async def test_amqps_checks_the_broker_name_and_works(tls_proxy: Any) -> None:
    ca_path, port = tls_proxy
    url = f"amqps://guest:guest@localhost:{port}/%2F?ssl_options={{'ca_certs': '{ca_path}'}}"
    conn = await connect(reactor, url)
    try:
        channel = await conn.channel()
        ok = await channel.queue_declare(f"tls-{uuid.uuid4().hex}", exclusive=True)
        await channel.confirm_delivery()
        await channel.basic_publish("", ok.queue, b"over TLS")
        message = await channel.basic_get(ok.queue, auto_ack=True)
        assert message is not None and message.body == b"over TLS"
    finally:
        await conn.close()


@pytest_twisted.ensureDeferred
async def test_amqps_refuses_a_certificate_for_another_name(tls_proxy: Any) -> None:
    ca_path, port = tls_proxy
    url = (
        f"amqps://guest:guest@127.0.0.1:{port}/%2F?stack_timeout=5&ssl_options="
        f"{{'ca_certs': '{ca_path}', 'server_hostname': 'broker.example.org'}}"
    )
    with pytest.raises(AMQPConnectionError):
        await connect(reactor, url)


@pytest_twisted.ensureDeferred
async def test_amqps_refuses_an_untrusted_certificate(tls_proxy: Any) -> None:
    _, port = tls_proxy
    url = f"amqps://guest:guest@localhost:{port}/%2F?stack_timeout=5"
    with pytest.raises(AMQPConnectionError):
        await connect(reactor, url)

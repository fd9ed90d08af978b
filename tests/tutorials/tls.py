"""A loopback TLS front for the local broker, with a throwaway CA, for the TLS recipe.

The shared broker has no TLS listener, so the test terminates TLS itself: a
stdlib ``ssl`` server on 127.0.0.1 with a certificate for ``localhost`` that
*requires* a client certificate signed by the same CA, forwarding the plaintext to
127.0.0.1:5672. Threads, bounded by socket timeouts; nothing leaves loopback.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(directory: Path) -> dict[str, Path]:
    """ca.pem, server.pem (key + cert for the name localhost only), client.pem and client.key."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("txamqp091 recipe CA"))
        .issuer_name(_name("txamqp091 recipe CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def issue(common_name: str, names: list[x509.GeneralName]) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return key_pem, cert.public_bytes(serialization.Encoding.PEM)

    # The name only, not 127.0.0.1: dialling the address must fail the name check.
    server_key, server_cert = issue("localhost", [x509.DNSName("localhost")])
    client_key, client_cert = issue("txamqp091-recipe-client", [])
    paths = {
        "ca": directory / "ca.pem",
        "server": directory / "server.pem",
        "client_cert": directory / "client.pem",
        "client_key": directory / "client.key",
    }
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["server"].write_bytes(server_key + server_cert)
    paths["client_cert"].write_bytes(client_cert)
    paths["client_key"].write_bytes(client_key)
    return paths


class TlsFront:
    """127.0.0.1:<port> (TLS, client certificate required) -> 127.0.0.1:5672 (plain)."""

    def __init__(self, pki: dict[str, Path], upstream: tuple[str, int]) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca"]))
        self.context.load_cert_chain(str(pki["server"]))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.upstream = upstream
        self.handshake_errors: list[str] = []
        self.client_subjects: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.handshake_errors.append(str(exc))
            raw.close()
            return
        peer = tls.getpeercert() or {}
        self.client_subjects.extend(v for rdn in peer.get("subject", ()) for k, v in rdn)
        upstream = socket.create_connection(self.upstream, timeout=10)
        tls.settimeout(None)
        upstream.settimeout(None)

        def pump(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (source, sink):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        back = threading.Thread(target=pump, args=(upstream, tls), daemon=True)
        back.start()
        pump(tls, upstream)
        back.join(10)
        tls.close()
        upstream.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(5)

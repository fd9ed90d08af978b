"""TLS options of a connection; public names are re-exported by :mod:`txamqp091.params`."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from txamqp091._validation import _check_str

__all__ = ["SSLOptions", "default_ssl_context"]


def default_ssl_context() -> ssl.SSLContext:
    """Return a client context that verifies the broker against the system CAs."""
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH)


def _context_from_files(
    cafile: str | None, certfile: str | None, keyfile: str | None, verify: bool
) -> ssl.SSLContext:
    if keyfile is not None and certfile is None:
        raise ValueError("ssl_options keyfile needs a certfile")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
        if certfile is not None:
            context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"ssl_options could not be applied: {exc}") from exc
    if not verify:
        context.check_hostname = False  # must be cleared before verify_mode
        context.verify_mode = ssl.CERT_NONE
    return context


class SSLOptions:
    """How to wrap the connection in TLS.

    :param context: the client context; a verifying :func:`default_ssl_context`
        when omitted.
    :param server_hostname: the name to send as SNI and check the certificate
        against; the connection's ``host`` when ``None``.
    :param cafile: the CA bundle the context was built from, if any.
    :param certfile: the client certificate (PEM), for EXTERNAL authentication.
    :param keyfile: its private key (PEM), when not in ``certfile``.
    :param verify: whether the broker's certificate and name are checked.

    Without a ``context``, one is built from the files: it trusts ``cafile`` (the
    system CAs when ``None``) and presents ``certfile``/``keyfile``, so
    ``SSLOptions(cafile=..., certfile=..., keyfile=...)`` serves both adapters.
    The file names are kept because Twisted's TLS (pyOpenSSL) cannot use a
    stdlib :class:`ssl.SSLContext`; the Twisted adapter builds its own options
    from them.

    :raises ValueError: a file that cannot be read or used, naming the problem.
    """

    __slots__ = ("cafile", "certfile", "context", "keyfile", "server_hostname", "verify")

    def __init__(
        self,
        context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        *,
        cafile: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        verify: bool = True,
    ) -> None:
        if context is None:
            context = _context_from_files(cafile, certfile, keyfile, verify)
        elif not isinstance(context, ssl.SSLContext):
            raise ValueError(f"ssl_options context must be an ssl.SSLContext, got {context!r}")
        if server_hostname is not None:
            _check_str("ssl_options server_hostname", server_hostname, empty=False)
        self.context = context
        self.server_hostname = server_hostname
        self.cafile = cafile
        self.certfile = certfile
        self.keyfile = keyfile
        self.verify = verify

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SSLOptions):
            return NotImplemented
        return self.context is other.context and self.server_hostname == other.server_hostname

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        ctx = self.context
        return (
            f"SSLOptions(context=<SSLContext verify_mode={ctx.verify_mode.name}"
            f" check_hostname={ctx.check_hostname}>, server_hostname={self.server_hostname!r})"
        )


_SSL_KEYS = frozenset(
    {
        "ca_certs",
        "cafile",
        "ca_path",
        "capath",
        "ca_data",
        "cadata",
        "certfile",
        "keyfile",
        "password",
        "ciphers",
        "server_hostname",
        "verify",
    }
)


def _ssl_options_from_dict(opts: Mapping[str, Any], host: str) -> SSLOptions:
    """Build :class:`SSLOptions` from the URL's ``ssl_options`` dict (pika's keys)."""
    unknown = sorted(set(opts) - _SSL_KEYS)
    if unknown:
        raise ValueError(f"ssl_options has unknown keys {unknown}; valid: {sorted(_SSL_KEYS)}")
    files: dict[str, str | None] = {}
    for key in ("ca_certs", "cafile", "ca_path", "capath", "certfile", "keyfile", "ciphers"):
        value = opts.get(key)
        files[key] = None if value is None else _check_str(f"ssl_options {key}", value)
    cadata = opts.get("ca_data") or opts.get("cadata")
    if cadata is not None and not isinstance(cadata, (str, bytes)):
        raise ValueError(f"ssl_options cadata must be a str or bytes, got {cadata!r}")
    password = opts.get("password")
    if password is not None and not isinstance(password, (str, bytes)):
        raise ValueError("ssl_options password must be a str or bytes")
    verify = opts.get("verify", True)
    if not isinstance(verify, bool):
        raise ValueError(f"ssl_options verify must be a bool, got {verify!r}")
    if files["keyfile"] is not None and files["certfile"] is None:
        raise ValueError("ssl_options keyfile needs a certfile")
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=files["ca_certs"] or files["cafile"],
            capath=files["ca_path"] or files["capath"],
            cadata=cadata,
        )
        if files["certfile"] is not None:
            context.load_cert_chain(files["certfile"], files["keyfile"], password)
        if files["ciphers"] is not None:
            context.set_ciphers(files["ciphers"])
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"ssl_options could not be applied: {exc}") from exc
    if not verify:
        context.check_hostname = False  # must be cleared before verify_mode
        context.verify_mode = ssl.CERT_NONE
    server_hostname = opts.get("server_hostname")
    return SSLOptions(
        context,
        host if server_hostname is None else server_hostname,
        cafile=files["ca_certs"] or files["cafile"],
        certfile=files["certfile"],
        keyfile=files["keyfile"],
        verify=verify,
    )

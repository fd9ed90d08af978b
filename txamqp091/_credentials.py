"""Credentials (PLAIN and EXTERNAL); public names are re-exported by :mod:`txamqp091.params`."""

from __future__ import annotations

from typing import ClassVar, TypeAlias

from txamqp091._validation import _check_str
from txamqp091.exceptions import AuthenticationError


def _offered(mechanisms: bytes | str) -> list[str]:
    if isinstance(mechanisms, bytes):
        mechanisms = mechanisms.decode("latin-1")
    return mechanisms.split()


class PlainCredentials:
    """A username and password sent with the SASL ``PLAIN`` mechanism.

    :param username: the RabbitMQ user.
    :param password: its password; never shown by ``repr``.
    :param erase_on_connect: forget both once the connection has authenticated
        (a later reconnect then sends empty credentials, as with pika).
    """

    __slots__ = ("erase_on_connect", "password", "username")

    mechanism: ClassVar[str] = "PLAIN"
    TYPE: ClassVar[str] = "PLAIN"  # pika's name for ``mechanism``

    def __init__(self, username: str, password: str, erase_on_connect: bool = False) -> None:
        # PLAIN separates its fields with NUL (RFC 4616), so neither may contain one.
        for name, value in (("username", username), ("password", password)):
            if "\0" in _check_str(name, value):
                raise ValueError(f"{name} must not contain a NUL character")
        if not isinstance(erase_on_connect, bool):
            raise ValueError(f"erase_on_connect must be a bool, got {erase_on_connect!r}")
        self.username: str | None = username
        self.password: str | None = password
        self.erase_on_connect = erase_on_connect

    def response_for(self, mechanisms: bytes | str) -> bytes:
        """Return the Connection.StartOk ``response`` for this mechanism.

        :param mechanisms: Connection.Start's space-separated ``mechanisms``.
        :raises AuthenticationError: the broker does not offer ``PLAIN``.
        """
        _require_offered(self.mechanism, mechanisms)
        user = (self.username or "").encode("utf-8")
        secret = (self.password or "").encode("utf-8")
        return b"\0" + user + b"\0" + secret

    def erase_credentials(self) -> None:
        """Forget the username and password if ``erase_on_connect`` was asked for."""
        if self.erase_on_connect:
            self.username = None
            self.password = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PlainCredentials):
            return NotImplemented
        return (self.username, self.password, self.erase_on_connect) == (
            other.username,
            other.password,
            other.erase_on_connect,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable: erase_credentials()

    def __repr__(self) -> str:
        erase = ", erase_on_connect=True" if self.erase_on_connect else ""
        return f"PlainCredentials(username={self.username!r}, password=<hidden>{erase})"


class ExternalCredentials:
    """The SASL ``EXTERNAL`` mechanism: the broker authenticates the TLS client certificate."""

    __slots__ = ("erase_on_connect",)

    mechanism: ClassVar[str] = "EXTERNAL"
    TYPE: ClassVar[str] = "EXTERNAL"

    def __init__(self) -> None:
        self.erase_on_connect = False

    def response_for(self, mechanisms: bytes | str) -> bytes:
        """Return the (empty) Connection.StartOk ``response``.

        :raises AuthenticationError: the broker does not offer ``EXTERNAL``.
        """
        _require_offered(self.mechanism, mechanisms)
        return b""

    def erase_credentials(self) -> None:
        """Nothing to forget."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExternalCredentials):
            return NotImplemented
        return True

    def __hash__(self) -> int:
        return hash(ExternalCredentials)

    def __repr__(self) -> str:
        return "ExternalCredentials()"


Credentials: TypeAlias = PlainCredentials | ExternalCredentials


def _require_offered(mechanism: str, mechanisms: bytes | str) -> None:
    offered = _offered(mechanisms)
    if mechanism not in offered:
        raise AuthenticationError(
            f"the broker offers {' '.join(offered) or 'no mechanism'}, not {mechanism}"
        )

"""``pika.credentials``: the credential classes under pika's module name."""

from __future__ import annotations

from ..params import ExternalCredentials, PlainCredentials

__all__ = ["ExternalCredentials", "PlainCredentials"]

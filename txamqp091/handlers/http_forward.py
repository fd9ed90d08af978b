"""``txamqp091.handlers:http_forward``: POST each message to a URL with treq.

::

    twistd -n amqp-consumer --queue hooks --handler txamqp091.handlers:http_forward \\
        --forward-url https://example.com/hook [--forward-timeout 10] [--forward-concurrency 8]

The body is POSTed as it is, with the message's content type (and content
encoding); each AMQP header becomes an HTTP header of the same name, and the
delivery's facts travel as ``X-AMQP-*`` headers. The answer decides the
message's fate: 2xx acks it; 4xx rejects it (the endpoint refused it, retrying
will not help: it is dead-lettered where the queue has a DLX); 5xx, any other
status, a timeout or a connection error requeues it, subject to
``--max-redeliveries``. Needs the ``txamqp091[http]`` extra.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore

from ..handling import RejectMessage, RequeueMessage, handler_factory
from ..message import Message

__all__ = ["HTTPForwarder", "http_forward", "http_headers"]

#: An HTTP header name (RFC 9110 token): AMQP headers whose names are not are skipped.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: Headers the bridge sets itself (or the HTTP client does): never taken from the message.
_RESERVED = frozenset(
    {"content-type", "content-length", "content-encoding", "host", "transfer-encoding",
     "connection"}
)  # fmt: skip


def _header_value(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return json.dumps(value, default=str, separators=(",", ":"))


def http_headers(message: Message) -> dict[bytes, list[bytes]]:
    """The HTTP headers a message is POSTed with."""
    props = message.properties
    headers: dict[bytes, list[bytes]] = {}
    for name, value in (props.headers or {}).items():
        if _TOKEN.match(name) and name.lower() not in _RESERVED:
            text = _header_value(value).replace("\r", " ").replace("\n", " ")
            headers[name.encode()] = [text.encode("utf-8")]
    headers[b"Content-Type"] = [(props.content_type or "application/octet-stream").encode()]
    if props.content_encoding:
        headers[b"Content-Encoding"] = [props.content_encoding.encode()]
    facts = {
        b"X-AMQP-Exchange": message.exchange,
        b"X-AMQP-Routing-Key": message.routing_key,
        b"X-AMQP-Redelivered": "true" if message.redelivered else "false",
        b"X-AMQP-Message-Id": props.message_id,
        b"X-AMQP-Correlation-Id": props.correlation_id,
    }
    for fact, fact_text in facts.items():
        if fact_text is not None:
            headers[fact] = [fact_text.encode("utf-8")]
    return headers


class HTTPForwarder:
    """The handler: ``forwarder(message)`` fires once the endpoint has answered 2xx.

    :param url: where to POST.
    :param timeout: seconds before a POST counts as failed (and the message is requeued).
    :param concurrency: POSTs at once; more wait their turn.
    :param client: a ``treq.client.HTTPClient`` (tests pass ``treq.testing``'s);
        by default one with a persistent connection pool sized to ``concurrency``.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 10.0,
        concurrency: int = 10,
        client: Any = None,
        reactor: Any = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--forward-url must be an http:// or https:// URL, got {url!r}")
        self.url = url
        self.timeout = timeout
        self._limit = DeferredSemaphore(max(1, concurrency))
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        if client is None:
            client = _pooled_client(reactor, max(1, concurrency))
        self._client = client

    def __call__(self, message: Message) -> Deferred[None]:
        return self._limit.run(self._forward, message)

    def _forward(self, message: Message) -> Deferred[None]:
        from twisted.internet.defer import ensureDeferred

        return ensureDeferred(self._post(message))

    async def _post(self, message: Message) -> None:
        try:
            response = await self._client.post(
                self.url, data=message.body, headers=http_headers(message), timeout=self.timeout
            )
            await response.content()  # read it all, so the connection can be reused
        except Exception as exc:
            raise RequeueMessage(f"POST {self.url} failed: {type(exc).__name__}: {exc}") from exc
        code = response.code
        if 200 <= code < 300:
            return
        if 400 <= code < 500:
            raise RejectMessage(f"POST {self.url} answered {code}: not retried")
        raise RequeueMessage(f"POST {self.url} answered {code}")


def _pooled_client(reactor: Any, size: int) -> Any:
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
    pool.maxPersistentPerHost = size
    return HTTPClient(Agent(reactor, pool=pool))  # type: ignore[no-untyped-call]


@handler_factory
def http_forward(options: Mapping[str, Any]) -> HTTPForwarder:
    """The ``--handler txamqp091.handlers:http_forward`` factory: reads ``--forward-url``,
    ``--forward-timeout`` and ``--forward-concurrency`` (default: ``--concurrency``)."""
    url = options.get("forward-url")
    if not url:
        raise ValueError("--forward-url is required")
    concurrency = options.get("forward-concurrency") or options.get("concurrency") or 10
    return HTTPForwarder(url, timeout=float(options.get("forward-timeout") or 10.0),
                         concurrency=int(concurrency))  # fmt: skip

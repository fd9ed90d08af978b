"""``--health-port``: ``/healthz``, ``/readyz`` and ``/metrics`` over twisted.web.

``/healthz`` answers 200 while the service is connected and consuming, else 503;
``/readyz`` is the same and, in addition, needs the first Basic.ConsumeOk to have
arrived (so a pod is not sent traffic it cannot take). Both carry a JSON body
that says why. ``/metrics`` is the Prometheus text of the service's
:class:`~txamqp091.metrics.ConsumerMetrics` (404 without ``prometheus_client``).

Imported only when ``--health-port`` is given: ``twistd --help`` never loads twisted.web.
"""

from __future__ import annotations

# twisted.web is untyped: its calls are untyped calls.
# mypy: disable-error-code="no-untyped-call"
import json
from typing import TYPE_CHECKING, Any

from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from ...metrics import MetricsUnavailable

if TYPE_CHECKING:
    from .service import ConsumerService

__all__ = ["HealthPortUnavailable", "HealthResource", "health_service", "health_site"]


class _Probe(Resource):
    isLeaf = True

    def __init__(self, service: ConsumerService, needs_ready: bool) -> None:
        super().__init__()
        self._service = service
        self._needs_ready = needs_ready

    def render_GET(self, request: Request) -> bytes:
        state = self._service.health()
        if self._needs_ready and state["ok"] and not state["ready"]:
            state["ok"], state["reason"] = False, "no Basic.ConsumeOk yet"
        request.setResponseCode(200 if state["ok"] else 503)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(state).encode() + b"\n"


class _Metrics(Resource):
    isLeaf = True

    def __init__(self, service: ConsumerService) -> None:
        super().__init__()
        self._service = service

    def render_GET(self, request: Request) -> bytes:
        self._service.health()  # refreshes the connected and blocked gauges
        try:
            body, content_type = self._service.metrics.exposition()
        except (MetricsUnavailable, ImportError) as exc:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return f"{exc}\n".encode()
        request.setHeader(b"content-type", content_type.encode())
        return body


class HealthResource(Resource):
    """The root: ``/healthz``, ``/readyz`` and ``/metrics``."""

    def __init__(self, service: ConsumerService) -> None:
        super().__init__()
        self.putChild(b"healthz", _Probe(service, needs_ready=False))
        self.putChild(b"readyz", _Probe(service, needs_ready=True))
        self.putChild(b"metrics", _Metrics(service))


def health_site(service: ConsumerService) -> Site:
    site = Site(HealthResource(service))
    site.noisy = False
    site.displayTracebacks = False
    # No access log per probe: a probe every few seconds would drown the consumer's lines.
    site.log = lambda request: None  # type: ignore[method-assign]
    return site


class HealthPortUnavailable(SystemExit):
    """``--health-port`` cannot be listened on (in use, or a privileged port): the
    process ends with status 1 and one line naming the port, not a traceback."""


def health_service(service: ConsumerService, port: int, interface: str = "") -> Any:
    from twisted.application.internet import TCPServer
    from twisted.internet.error import CannotListenError
    from twisted.logger import Logger

    log = Logger(namespace="txamqp091.consumer")

    class HealthServer(TCPServer):
        """Binds in ``privilegedStartService``, before the reactor runs: a port in use
        is reported here as one line, and ``SystemExit(1)`` ends ``twistd`` before it
        connects to the broker (a service without its probes would be killed by the
        orchestrator anyway)."""

        def privilegedStartService(self) -> None:
            try:
                super().privilegedStartService()
            except CannotListenError as exc:
                where = f"{interface or '*'}:{port}"
                why = getattr(exc.socketError, "strerror", None) or exc.socketError
                log.critical(
                    "amqp-consumer: --health-port {port}: cannot listen on {where}: {why}; "
                    "exiting with status 1",
                    port=port,
                    where=where,
                    why=why,
                )
                raise HealthPortUnavailable(1) from None

    return HealthServer(port, health_site(service), interface=interface)

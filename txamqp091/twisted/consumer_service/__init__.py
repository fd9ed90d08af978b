"""The ``twistd amqp-consumer`` service: options, the consumer, poison handling, health.

``twisted/plugins/txamqp091_plugin.py`` names :mod:`txamqp091.twisted.tap`, which
re-exports :class:`Options` and :func:`make_service` from here. See
``docs/consumer-service.rst`` for running it under systemd or in a container.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService, MultiService
from twisted.logger import ILogObserver

from .options import Options
from .service import ConsumerService, Declaration

__all__ = ["ConsumerService", "Declaration", "Options", "make_service"]


class ConsumerRoot(MultiService):
    """The consumer with its health server; installs the JSON log observer when asked.

    ``twistd`` starts logging after the plugin made its service and only looks
    for a custom observer on the application, so the observer is put there when
    this service is attached to it.
    """

    def __init__(self, consumer: ConsumerService, log_observer: Any = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.consumer = consumer
        self.log_observer = log_observer
        consumer.setServiceParent(self)  # type: ignore[no-untyped-call]

    def setServiceParent(self, parent: Any) -> None:
        if self.log_observer is not None and hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)  # type: ignore[no-untyped-call]


def make_service(options: Options, reactor: Any = None) -> IService:
    """The service ``twistd amqp-consumer`` runs, from parsed :class:`Options`."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    declaration = None
    if options["declare"]:
        declaration = Declaration(
            queue_arguments=dict(options["queue_arguments"]),
            exchange=options["exchange"],
            exchange_type=options["exchange-type"],
            routing_keys=list(options["routing-key"]),
            dead_letter_exchange=options["dead-letter-exchange"],
        )
    consumer = ConsumerService(
        reactor,
        options["params"],
        options["queue"],
        options["handler_fn"],
        prefetch=options["prefetch"],
        concurrency=options["concurrency"],
        threads=options["threads"],
        on_error=options["on-error"],
        max_redeliveries=options["max-redeliveries"],
        requeue_delay=options["requeue-delay"],
        shutdown_grace=options["shutdown-grace"],
        declare=declaration,
        stream_offset=options["stream-offset"] if options["stream"] else None,
    )
    observer = None
    if options["log-format"] == "json":
        from .logs import JSONLinesObserver

        observer = JSONLinesObserver()
    root = ConsumerRoot(consumer, observer)
    if options["health-port"]:
        from .health import health_service

        health_service(
            consumer, options["health-port"], options["health-interface"]
        ).setServiceParent(root)
    return root

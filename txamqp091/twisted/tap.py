"""``twistd amqp-consumer``: what the one-line plugin in ``twisted/plugins`` loads.

The options, the service and the handlers live in
:mod:`txamqp091.twisted.consumer_service`; this module only hands ``twistd``
the two names it looks for.
"""

from __future__ import annotations

from twisted.application.service import IService

from .consumer_service import ConsumerService, Options, make_service

__all__ = ["ConsumerService", "Options", "makeService"]


def makeService(options: Options) -> IService:
    return make_service(options)

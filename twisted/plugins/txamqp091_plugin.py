from __future__ import annotations

from twisted.application.service import ServiceMaker

amqp_consumer = ServiceMaker(
    "txamqp091 AMQP consumer",
    "txamqp091.twisted.tap",
    "Consume an AMQP queue with a handler",
    "amqp-consumer",
)

"""pika-style annotations with ``txamqp091.blocking.spec`` (mypy --strict checks this file)."""

from __future__ import annotations

from txamqp091.blocking import BasicProperties, BlockingChannel
from txamqp091.blocking.spec import Basic


def on_message(
    ch: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
) -> None:
    ch.basic_ack(delivery_tag=method.delivery_tag)


def on_return(
    ch: BlockingChannel, method: Basic.Return, props: BasicProperties, body: bytes
) -> None:
    print(method.reply_code, method.reply_text, method.exchange, method.routing_key)

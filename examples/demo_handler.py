"""The handler the demo's ``twistd amqp-consumer`` runs: one line per message."""

from __future__ import annotations

import sys

from txamqp091 import Message

handled = 0


def handle(message: Message) -> None:
    global handled
    handled += 1
    print(f"handled {handled}: {message.body.decode()}", flush=True)
    sys.stdout.flush()

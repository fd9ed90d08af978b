"""Connect over TLS, checking the broker's certificate and presenting our own (Twisted).

    python tls_asyncio.py --host broker.example.com --port 5671 \\
        --cafile ca.pem --certfile client.pem --keyfile client.key

The client checks that the broker's certificate is signed by ``--cafile`` (the
system's CAs when omitted) and names ``--host``; a mismatch fails the connection.
``--certfile``/``--keyfile`` present a client certificate, for brokers that require
one (and for the EXTERNAL mechanism, which logs in as the certificate's subject).
The same ``SSLOptions`` serves the asyncio adapter.
"""

from __future__ import annotations

import argparse
from typing import Any

from twisted.internet import defer, task

from txamqp091 import ConnectionParameters, PlainCredentials
from txamqp091.params import SSLOptions
from txamqp091.twisted import connect


async def main(reactor: Any, args: argparse.Namespace) -> None:
    parameters = ConnectionParameters(
        host=args.host,
        port=args.port,
        credentials=PlainCredentials("guest", "guest"),
        ssl_options=SSLOptions(cafile=args.cafile, certfile=args.certfile, keyfile=args.keyfile),
    )
    connection = await connect(reactor, parameters)
    channel = await connection.channel()
    declared = await channel.queue_declare("", exclusive=True)
    await channel.basic_publish("", declared.queue, b"sent over TLS")
    message = await channel.basic_get(declared.queue, auto_ack=True)
    assert message is not None
    print(f"{message.body.decode()} to {args.host}:{args.port}")
    await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=5671)
    parser.add_argument("--cafile")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    arguments = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))

"""The rpc scenario's reference rows: what the broker, the kernel and Python allow.

Both rows run the C client's round trip (``../shared/bench/c-ceiling/amqp_bench.c``):
one connection, the responder on channel 1 and the client on channel 2, a 64 B request
with ``reply_to`` and ``correlation_id`` echoed back, both sides in one thread. The
socket is non-blocking (TCP_NODELAY) and the thread waits in ``epoll``, as every
adapter's event loop does; reads are ``recv(64 KiB)``, below malloc's mmap threshold
(``recv(1 MiB)`` costs an mmap and a munmap per read, which is not the broker's cost).

* ``py-floor``: plain Python. Every request and reply frame set is encoded before the
  timed section; a round trip sends one, scans the frame headers read until the body
  frame on the waited-for channel, and sends the other. What is left is the broker,
  the kernel and the interpreter's least: no client library can beat it.
* ``core-floor``: the same loop with txamqp091's sans-IO core doing the work an
  adapter hands it: ``Connection.receive_data`` decodes, ``Channel.publish`` and
  ``data_to_send`` encode, the ``Delivery`` events are matched by channel. Still no
  reactor, futures or coroutines: the gap to ``py-floor`` is the core's, the gap
  from here to an adapter's row is the adapter's and its framework's.
* ``twisted-floor`` and ``asyncio-floor``: ``py-floor``'s frames and scan, driven as an
  adapter drives its reads and its user code: the framework's poller wakes a
  ``Protocol``'s ``dataReceived`` / ``data_received``, whose body frame calls the next
  step of the loop (no Deferred, future or coroutine: the framework's least); sends go
  to the socket at once, as both adapters' ``write()`` does. No txamqp091
  code runs in the timed loop, so the gap from here to ``txamqp091-twisted`` /
  ``txamqp091-tornado`` is txamqp091's, and the gap to ``py-floor`` is the framework's:
  what any client on that framework pays.

``twisted_client.py`` and ``tornado_client.py`` run them as workers (``--client
py-floor``), so they show in both scripts' rpc tables and in ``compare.py``'s, and
``rpc_timeline.py --floors`` alternates them with its adapters.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, Protocol

from _rpc import BODY_64

#: The reference rows, by client name.
FLOORS = ("py-floor", "core-floor", "twisted-floor", "asyncio-floor")
#: The floor that runs on each client script's own framework (see :func:`rows`).
LOOP_FLOOR = {"twisted": "twisted-floor", "asyncio": "asyncio-floor"}

#: Bytes asked of each recv (see the module's docstring).
READ_SIZE = 65536
#: AMQP frame type of a content body frame.
FRAME_BODY = 3
#: A frame's type, channel and payload size.
FRAME_HEADER = struct.Struct(">BHI")
#: Channel numbers, as the C program opens them.
RESPONDER_CHANNEL = 1
CLIENT_CHANNEL = 2


class Meter(Protocol):
    """The client scripts' meter: clock and CPU around the timed section."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def result(self, n: int, **extra: Any) -> dict[str, Any]: ...


class FloorError(RuntimeError):
    """The broker closed something, or did not answer in time."""


class Link:
    """One broker connection on a non-blocking socket watched by epoll, driven by the core."""

    def __init__(self, host: str, port: int, user: str, password: str, timeout: float) -> None:
        from txamqp091.core import events as ev
        from txamqp091.core.connection import Connection
        from txamqp091.params import PlainCredentials

        self.ev = ev
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.epoll = select.epoll()
        self.epoll.register(self.sock.fileno(), select.EPOLLIN)
        self.conn = Connection(credentials=PlainCredentials(user, password), heartbeat=0)
        self.pump(lambda e: isinstance(e, ev.ConnectionOpened))

    def wait(self) -> None:
        """Until the socket is readable; a broker silent for ``timeout`` is an error."""
        if not self.epoll.poll(self.timeout):
            raise FloorError(f"no data from the broker within {self.timeout} s")

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, until: Callable[[Any], bool]) -> Any:
        """Send what the core queued, then read until an event passes ``until``."""
        ev = self.ev
        while True:
            self.flush()
            self.wait()
            chunk = self.sock.recv(READ_SIZE)
            if not chunk:
                raise FloorError("broker closed the connection")
            for event in self.conn.receive_data(chunk, time.monotonic()):
                if isinstance(event, (ev.ConnectionClosed, ev.ChannelClosed)):
                    raise FloorError(repr(event))
                if until(event):
                    self.flush()
                    return event

    def call(self, channel: Any, method: Any) -> Any:
        """A synchronous method and its reply."""
        channel.send_method(method)
        return self.pump(lambda e: isinstance(e, self.ev.MethodReply)).method

    def channel(self) -> Any:
        channel = self.conn.open_channel()
        self.pump(lambda e: isinstance(e, self.ev.ChannelOpened))
        return channel

    def close(self) -> None:
        self.epoll.close()
        self.sock.close()


def body_end(buf: bytes, channel: int) -> tuple[int, bool]:
    """Where the whole frames at the start of ``buf`` end: just after the first body
    frame on ``channel`` (and True), else after the last whole frame (and False)."""
    unpack = FRAME_HEADER.unpack_from
    pos, end = 0, len(buf)
    while pos + 7 <= end:
        kind, chan, size = unpack(buf, pos)
        if pos + 8 + size > end:
            break
        pos += 8 + size
        if kind == FRAME_BODY and chan == channel:
            return pos, True
    return pos, False


def loop_time_limit(link: Link, calls: int) -> float:
    """Seconds a loop floor's run may take: the link's per-read timeout, ten times over,
    plus 10 ms a call (a loop floor has no per-read timeout of its own)."""
    return link.timeout * 10 + calls * 0.01


def py_rounds(
    link: Link, requests: list[bytes], replies: list[bytes], warmup: int, meter: Meter
) -> list[float]:
    """``py-floor``'s timed loop over pre-encoded frames; every call's latency (warm-up
    included)."""
    recv, send, poll, timeout = link.sock.recv, link.sock.send, link.epoll.poll, link.timeout
    pending = b""

    def wait_body(channel: int) -> None:
        # The frames read up to the body frame on ``channel``; what follows it stays.
        nonlocal pending
        buf = pending
        while True:
            if not poll(timeout):
                raise FloorError(f"no data from the broker within {timeout} s")
            buf += recv(READ_SIZE)
            pos, found = body_end(buf, channel)
            if found:
                pending = buf[pos:]
                return
            buf = buf[pos:]

    perf = time.perf_counter
    lat: list[float] = []
    append = lat.append
    for i in range(len(requests)):
        if i == warmup:
            meter.start()
        t0 = perf()
        send(requests[i])
        wait_body(RESPONDER_CHANNEL)
        send(replies[i])
        wait_body(CLIENT_CHANNEL)
        append(perf() - t0)
    meter.stop()
    return lat


class BodyWaiter:
    """The loop floors' read side: frames read are scanned as ``py_rounds`` scans them,
    and the body frame on ``channel`` calls ``fire`` (once) with the rest kept."""

    __slots__ = ("buf", "channel", "fire")

    def __init__(self) -> None:
        self.buf = b""
        self.channel = 0
        self.fire: Callable[[], object] | None = None

    def received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, found = body_end(buf, self.channel)
        self.buf = buf[pos:]
        if found:
            fire, self.fire = self.fire, None
            if fire is None:
                raise FloorError(f"a body on channel {self.channel} that nothing waited for")
            fire()


class Calls:
    """The loop floors' user code: ``py_rounds``' loop as the callbacks that each body
    read calls (``BodyWaiter.fire``), with no Deferred, future or coroutine between the
    read and the next send: the least any client on the framework does per read."""

    def __init__(
        self, send: Callable[[bytes], object], waiter: BodyWaiter, requests: list[bytes],
        replies: list[bytes], warmup: int, meter: Meter, done: Callable[[list[float]], object],
    ) -> None:  # fmt: skip
        self.send, self.waiter, self.meter, self.done = send, waiter, meter, done
        self.requests, self.replies, self.warmup = requests, replies, warmup
        self.lat: list[float] = []
        self.i = 0
        self.t0 = 0.0

    def request(self) -> None:
        i = self.i
        if i == len(self.requests):
            self.meter.stop()
            self.done(self.lat)
            return
        if i == self.warmup:
            self.meter.start()
        self.t0 = time.perf_counter()
        self.send(self.requests[i])
        self.waiter.channel = RESPONDER_CHANNEL
        self.waiter.fire = self.reply

    def reply(self) -> None:
        self.send(self.replies[self.i])
        self.waiter.channel = CLIENT_CHANNEL
        self.waiter.fire = self.returned

    def returned(self) -> None:
        self.lat.append(time.perf_counter() - self.t0)
        self.i += 1
        self.request()


def twisted_rounds(
    link: Link, requests: list[bytes], replies: list[bytes], warmup: int, meter: Meter
) -> list[float]:
    """``twisted-floor``'s run: the link's socket adopted by Twisted's default reactor
    (a duplicate of it, so the link keeps its own for the queue's deletion after)."""
    from twisted.internet import protocol, reactor

    waiter = BodyWaiter()

    class Floor(protocol.Protocol):
        def dataReceived(self, data: bytes) -> None:
            waiter.received(data)

    floor = Floor()
    reactor.adoptStreamConnection(  # type: ignore[attr-defined]
        link.sock.fileno(), socket.AF_INET, protocol.Factory.forProtocol(lambda: floor)
    )
    transport: Any = floor.transport
    sock_send = transport.socket.send

    def send(data: bytes) -> None:
        # As the adapter's write(): to the socket now, the transport's buffer if it is full.
        sent = sock_send(data)
        if sent != len(data):
            transport.write(data[sent:])

    outcome: list[Any] = []

    def finish(result: object) -> None:
        # Out of the reactor before it stops: its shutdown would disconnect the
        # transport with a shutdown(2), which ends the link's connection too.
        outcome.append(result)
        transport.stopReading()
        transport.stopWriting()
        transport.socket.close()  # the duplicate only
        if timer.active():
            timer.cancel()
        reactor.stop()

    limit = loop_time_limit(link, len(requests))
    timer = reactor.callLater(
        limit, lambda: finish(FloorError(f"twisted-floor did not finish in {limit:.0f} s"))
    )
    reactor.callWhenRunning(Calls(send, waiter, requests, replies, warmup, meter, finish).request)
    reactor.run()
    if not outcome or not isinstance(outcome[0], list):
        raise FloorError(f"twisted-floor failed: {outcome[0] if outcome else 'no result'}")
    lat: list[float] = outcome[0]
    return lat


def asyncio_rounds(
    link: Link, requests: list[bytes], replies: list[bytes], warmup: int, meter: Meter
) -> list[float]:
    """``asyncio-floor``'s run: a duplicate of the link's socket under a new asyncio
    event loop (the default policy's, as the Tornado adapter's benchmarks run)."""
    import asyncio

    waiter = BodyWaiter()

    class Floor(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            waiter.received(data)

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        sock = link.sock.dup()
        transport, _ = await loop.create_connection(Floor, sock=sock)
        done: asyncio.Future[list[float]] = loop.create_future()
        try:
            Calls(
                transport.write, waiter, requests, replies, warmup, meter, done.set_result
            ).request()
            return await asyncio.wait_for(done, loop_time_limit(link, len(requests)))
        finally:
            transport.abort()  # closes the duplicate only

    return asyncio.run(main())


#: The loop floors' runs, by client name.
LOOP_ROUNDS = {"twisted-floor": twisted_rounds, "asyncio-floor": asyncio_rounds}


def core_rounds(
    link: Link, channels: tuple[Any, Any], queue: str, reply_queue: str, n: int, warmup: int,
    meter: Meter,
) -> list[float]:  # fmt: skip
    """``core-floor``'s timed loop; returns every call's latency (warm-up included)."""
    from txamqp091.core.events import Delivery
    from txamqp091.core.spec import BasicProperties

    responder, client = channels
    conn = link.conn
    recv, send, poll, timeout = link.sock.recv, link.sock.send, link.epoll.poll, link.timeout
    receive, data_to_send, now = conn.receive_data, conn.data_to_send, time.monotonic

    def wait_delivery(channel: int) -> Any:
        while True:
            if not poll(timeout):
                raise FloorError(f"no data from the broker within {timeout} s")
            for event in receive(recv(READ_SIZE), now()):
                if type(event) is Delivery and event.channel_id == channel:
                    return event

    perf = time.perf_counter
    lat: list[float] = []
    append = lat.append
    for i in range(warmup + n):
        if i == warmup:
            meter.start()
        cid = str(i)
        t0 = perf()
        client.publish(
            "", queue, BODY_64, BasicProperties(reply_to=reply_queue, correlation_id=cid)
        )
        send(data_to_send())
        req = wait_delivery(RESPONDER_CHANNEL)
        props = req.properties
        responder.publish(
            "", props.reply_to, req.body, BasicProperties(correlation_id=props.correlation_id)
        )
        send(data_to_send())
        rep = wait_delivery(CLIENT_CHANNEL)
        append(perf() - t0)
        if rep.properties.correlation_id != cid:
            raise FloorError(f"reply {rep.properties.correlation_id!r} for {cid!r}")
    meter.stop()
    return lat


def floor_rpc(
    client: str,
    *,
    host: str,
    port: int,
    user: str,
    password: str,
    queue: str,
    n: int,
    warmup: int,
    meter: Meter,
    timeout: float = 30.0,
) -> list[float]:
    """Run ``client`` (one of :data:`FLOORS`): ``n`` round trips timed by ``meter`` after
    ``warmup`` ones, on ``queue`` (declared auto-delete here and deleted after; the caller
    deletes it too if a failure left it). Returns the timed calls' latencies, seconds."""
    if client not in FLOORS:
        raise ValueError(f"unknown floor {client!r}; choose from {', '.join(FLOORS)}")
    from txamqp091.core import spec

    link = Link(host, port, user, password, timeout)
    try:
        responder = link.channel()
        caller = link.channel()
        if (responder.channel_id, caller.channel_id) != (RESPONDER_CHANNEL, CLIENT_CHANNEL):
            raise FloorError("channels not numbered as the C program's")
        link.call(responder, spec.QueueDeclare(queue=queue, auto_delete=True))
        link.call(responder, spec.BasicConsume(queue=queue, consumer_tag="responder", no_ack=True))
        reply_queue = link.call(caller, spec.QueueDeclare(queue="", exclusive=True)).queue
        link.call(caller, spec.BasicConsume(queue=reply_queue, consumer_tag="client", no_ack=True))
        if client != "core-floor":
            # The frames the core-floor loop sends for call i, encoded by the same core.
            requests, replies = [], []
            for i in range(warmup + n):
                props = spec.BasicProperties(reply_to=reply_queue, correlation_id=str(i))
                caller.publish("", queue, BODY_64, props)
                requests.append(link.conn.data_to_send())
                responder.publish(
                    "", reply_queue, BODY_64, spec.BasicProperties(correlation_id=str(i))
                )
                replies.append(link.conn.data_to_send())
            rounds = LOOP_ROUNDS.get(client, py_rounds)
            lat = rounds(link, requests, replies, warmup, meter)
        else:
            lat = core_rounds(link, (responder, caller), queue, reply_queue, n, warmup, meter)
        link.call(responder, spec.QueueDelete(queue=queue))
    finally:
        link.close()
    return lat[warmup:]


def worker(
    a: Any, meter: Meter, latency: Callable[[list[float]], dict[str, float]], warmup: int
) -> dict[str, Any]:
    """A client script's worker for ``a.client`` (one of :data:`FLOORS`): its result as
    the script's other rows give theirs, or ``{"error": ...}``."""
    try:
        lat = floor_rpc(
            a.client, host=a.host, port=a.port, user=a.user, password=a.password,
            queue=a.queue, n=a.n, warmup=warmup, meter=meter, timeout=a.timeout,
        )  # fmt: skip
    except Exception as exc:  # reported in the table, as the other rows' failures
        return {"error": f"{type(exc).__name__}: {exc}"}
    return meter.result(a.n, **latency(lat))


def rows(
    scenario: str, clients: list[str], asked: list[str] | None, skip: bool,
    frameworks: tuple[str, ...] = ("twisted", "asyncio"),
) -> list[str]:  # fmt: skip
    """A client script's rows for ``scenario``: its ``clients``, then for rpc the floors
    that ``--client`` names (``asked``), or, when it names none, unless ``skip``
    (``--no-floor``), ``py-floor``, ``core-floor`` and the loop floors of
    ``frameworks`` (a script's own): cheap, and the bounds to read the clients' p50
    against."""
    if scenario != "rpc":
        return clients
    named = [f for f in FLOORS if asked and f in asked]
    default = [f for f in FLOORS if f not in LOOP_ROUNDS] + [LOOP_FLOOR[f] for f in frameworks]
    return clients + (named or ([] if skip else default))

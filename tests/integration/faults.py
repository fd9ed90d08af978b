"""Fault injection for the integration tests, usable from Twisted and asyncio tests alike.

:class:`TcpProxy` is a loopback TCP proxy running in a thread of its own (a
``selectors`` loop, no event-loop framework), so a test on any event loop puts
it between a client and RabbitMQ and breaks the network on cue::

    with TcpProxy() as proxy:                 # 127.0.0.1:<free port> -> 127.0.0.1:5672
        url = proxy.url("heartbeat=2")
        ...
        proxy.stall()       # forward nothing either way, close nothing (a black hole)
        proxy.resume()      # forward again (and accept normally)
        proxy.reset()       # RST every open connection (SO_LINGER 0)
        proxy.refuse()      # reset, and RST every new connection until resume()
                            # (refuse(reset=False) leaves the open ones alone)
        proxy.cut_after(100, connections=2)   # the next 2 connections end after 100 bytes

:func:`close_named_connections` closes a client's connections broker-side, as
``rabbitmqctl close_connection`` does, finding them by their ``connection_name``;
:class:`BrokerKiller` does it mid-stream, each time the connection has received
a given number of bytes (a CLI call takes a second to start: too late for a
fast publisher).

:func:`private_node` (behind the opt-in, module-scoped ``private_broker`` fixture
of ``tests/integration/recovery/conftest.py``) starts a RabbitMQ node of the tests'
own, on its own ports and data directory, for faults that must not touch the shared
broker: ``stop_app()`` / ``start_app()`` (a broker restart) and ``set_watermark(0)``
(a memory alarm).
It needs root (or the ``rabbitmq`` user) and the Debian packaging; when the node
cannot start within about a minute the tests using it are skipped.

Everything here blocks the calling thread (briefly for the proxy, seconds for
``rabbitmqctl``): call ``rabbitmqctl`` helpers through ``deferToThread`` or
``asyncio.to_thread`` from a running event loop.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "BrokerKiller",
    "BrokerNode",
    "TcpProxy",
    "close_named_connections",
    "free_port",
    "new_node",
    "private_node",
    "rabbitmqctl",
]

#: Bytes buffered towards one side before the proxy stops reading from the other.
_HIGH_WATER = 1 << 20
_RECV_SIZE = 65536


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _close_rst(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER on, timeout 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


# -- the proxy -----------------------------------------------------------------------------------


class _Link:
    """One proxied connection: the client's socket and ours to the target."""

    def __init__(
        self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket, limit: int | None
    ) -> None:
        self.proxy = proxy
        self.socks = {"c": client, "u": upstream}
        #: Bytes waiting to be written to each side.
        self.out = {"c": bytearray(), "u": bytearray()}
        self.masks = {"c": 0, "u": 0}
        #: Bytes (both ways together) still allowed through before the link is cut.
        self.limit = limit
        self.closed = False

    @staticmethod
    def other(side: str) -> str:
        return "u" if side == "c" else "c"

    def update(self) -> None:
        """Re-register interest: nothing at all while the proxy is stalled."""
        if self.closed:
            return
        sel = self.proxy._sel
        for side, sock in self.socks.items():
            mask = 0
            if not self.proxy._stalled:
                if len(self.out[self.other(side)]) < _HIGH_WATER:
                    mask |= selectors.EVENT_READ
                if self.out[side]:
                    mask |= selectors.EVENT_WRITE
            old = self.masks[side]
            if mask == old:
                continue
            if old and mask:
                sel.modify(sock, mask, (self, side))
            elif mask:
                sel.register(sock, mask, (self, side))
            else:
                sel.unregister(sock)
            self.masks[side] = mask

    def handle(self, side: str, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self.flush(side)
        if not self.closed and mask & selectors.EVENT_READ:
            self.read(side)
        self.update()

    def read(self, side: str) -> None:
        try:
            data = self.socks[side].recv(_RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self.close(rst=True)
            return
        other = self.other(side)
        if not data:
            # EOF: hand over what is left for the other side, then close both.
            self.flush(other)
            self.close(rst=False)
            return
        self.proxy.forwarded += len(data)
        if self.limit is not None:
            if len(data) >= self.limit:
                self.out[other] += data[: self.limit]
                self.flush(other)
                self.proxy.cut += 1
                self.close(rst=False)
                return
            self.limit -= len(data)
        self.out[other] += data
        self.flush(other)

    def flush(self, side: str) -> None:
        buf = self.out[side]
        while buf and not self.closed:
            try:
                sent = self.socks[side].send(buf)
            except BlockingIOError:
                return
            except OSError:
                self.close(rst=True)
                return
            del buf[:sent]

    def close(self, rst: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for side, sock in self.socks.items():
            if self.masks[side]:
                with contextlib.suppress(KeyError, ValueError):
                    self.proxy._sel.unregister(sock)
                self.masks[side] = 0
            if rst:
                _close_rst(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()
        self.proxy._links.discard(self)


class TcpProxy:
    """A loopback TCP proxy whose forwarding a test can stall, reset and cut.

    :param target: where connections are forwarded (RabbitMQ's AMQP port by default).

    The proxy listens on ``127.0.0.1`` at :attr:`port` (picked by the kernel)
    and forwards each accepted connection to ``target`` over a connection of
    its own. Every control method takes effect before it returns, so a test
    knows the state it set up; they are safe to call from any thread.

    Counters for assertions: :attr:`accepted` (connections taken),
    :attr:`cut` (connections ended by :meth:`cut_after`), :attr:`forwarded`
    (bytes carried), :attr:`active` (connections open now).
    """

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self.target = target
        self.accepted = 0
        self.cut = 0
        self.forwarded = 0
        self._stalled = False
        self._refusing = False
        self._cuts: deque[int] = deque()
        self._links: set[_Link] = set()
        self._commands: deque[Callable[[], None]] = deque()
        self._lock = threading.Lock()
        self._closing = False
        self._sel = selectors.DefaultSelector()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.host: str = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name=f"TcpProxy:{self.port}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        state = "stalled" if self._stalled else "refusing" if self._refusing else "forwarding"
        return f"<TcpProxy 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]} {state}>"

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, query: str = "", user: str = "guest", password: str = "guest") -> str:
        """An AMQP URL for the default vhost through the proxy, with ``query`` options."""
        url = f"amqp://{user}:{password}@127.0.0.1:{self.port}/%2F"
        return f"{url}?{query}" if query else url

    @property
    def active(self) -> int:
        count: int = self._call(lambda: len(self._links))
        return count

    # -- faults ------------------------------------------------------------------------------------

    def stall(self) -> None:
        """Stop forwarding in both directions, closing nothing (new connections too)."""

        def apply() -> None:
            self._stalled = True
            self._update_all()

        self._call(apply)

    def resume(self) -> None:
        """Forward again, and accept new connections normally (undoes stall and refuse)."""

        def apply() -> None:
            self._stalled = False
            self._refusing = False
            self._update_all()

        self._call(apply)

    def reset(self) -> None:
        """Close every open connection, both sides, with an RST."""
        self._call(self._reset_all)

    def refuse(self, reset: bool = True) -> None:
        """A broker that is down: RST each new connection as it comes until :meth:`resume`,
        and (with ``reset``) every open one now."""

        def apply() -> None:
            self._refusing = True
            if reset:
                self._reset_all()

        self._call(apply)

    def cut_after(self, n_bytes: int, connections: int = 1) -> None:
        """The next ``connections`` connections end (FIN, both sides) once ``n_bytes`` have
        passed through them, counting both directions; the byte that reaches the limit is
        the last one forwarded."""
        if n_bytes < 1 or connections < 1:
            raise ValueError("n_bytes and connections must be positive")
        self._call(lambda: self._cuts.extend([n_bytes] * connections))

    def close(self) -> None:
        """Stop the proxy and close every connection (idempotent)."""
        if not self._thread.is_alive():
            return
        with self._lock:
            self._closing = True
        self._wake()
        self._thread.join(10)

    # -- the loop thread --------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the proxy's thread and return its result."""
        if threading.current_thread() is self._thread:
            return fn()
        done = threading.Event()
        outcome: list[Any] = []

        def command() -> None:
            try:
                outcome.append((True, fn()))
            except BaseException as exc:  # handed back to the caller
                outcome.append((False, exc))
            finally:
                done.set()

        with self._lock:
            if self._closing:
                raise RuntimeError("the proxy is closed")
            self._commands.append(command)
        self._wake()
        if not done.wait(10):
            raise RuntimeError("the proxy thread did not answer within 10 s")
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._closing:
                        break
                for key, mask in self._sel.select(0.5):
                    tag = key.data
                    if tag == "accept":
                        self._accept()
                    elif tag == "wake":
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    else:
                        link, side = tag
                        if not link.closed:
                            link.handle(side, mask)
                self._run_commands()
        finally:
            self._run_commands()
            for link in list(self._links):
                link.close(rst=True)
            for sock in (self._listener, self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    sock.close()
            self._sel.close()

    def _run_commands(self) -> None:
        while True:
            with self._lock:
                if not self._commands:
                    return
                command = self._commands.popleft()
            command()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.accepted += 1
            if self._refusing:
                _close_rst(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                _close_rst(client)
                continue
            for sock in (client, upstream):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            limit = self._cuts.popleft() if self._cuts else None
            link = _Link(self, client, upstream, limit)
            self._links.add(link)
            link.update()

    def _update_all(self) -> None:
        for link in list(self._links):
            link.update()

    def _reset_all(self) -> None:
        for link in list(self._links):
            link.close(rst=True)


# -- rabbitmqctl ------------------------------------------------------------------------------------


def rabbitmqctl(
    *args: str, node: str | None = None, timeout: float = 60.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``rabbitmqctl [-n node] args...`` (blocking); raise on failure when ``check``."""
    command = ["rabbitmqctl"]
    if node is not None:
        command += ["-n", node]
    command += list(args)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}): {result.stdout}{result.stderr}"
        )
    return result


def _erlang_binary(text: str) -> str:
    if not all(c.isalnum() or c in "-_.:" for c in text):
        raise ValueError(f"connection name {text!r}: use letters, digits and -_.: only")
    return f'<<"{text}">>'


def close_named_connections(
    name: str, reason: str = "closed by the test", node: str | None = None
) -> int:
    """Close, broker-side, every connection whose ``connection_name`` is ``name``; return how many.

    This is ``rabbitmqctl close_connection`` for each of them (the broker sends
    Connection.Close 320 CONNECTION_FORCED with ``reason``), done in one
    ``rabbitmqctl eval`` so that finding and closing take one CLI start.
    """
    if not all(c.isalnum() or c in " -_.:" for c in reason):
        raise ValueError(f"reason {reason!r}: use letters, digits and -_.: only")
    expr = (
        f"Name = {_erlang_binary(name)}, "
        f'length([rabbit_networking:close_connection(P, "{reason}") '
        "|| P <- rabbit_networking:connections(), "
        # A connection still handshaking has no client properties yet (none), and one
        # that ended since it was listed makes connection_info exit: skip both.
        "[{client_properties, Props}] <- "
        "[catch rabbit_networking:connection_info(P, [client_properties])], "
        "is_list(Props), "
        'lists:keyfind(<<"connection_name">>, 1, Props) =:= '
        '{<<"connection_name">>, longstr, Name}]).'
    )
    result = rabbitmqctl("eval", expr, node=node)
    return int(result.stdout.strip().splitlines()[-1])


class BrokerKiller:
    """Broker-side kills that land while traffic flows, not a CLI start-up later.

    Starting ``rabbitmqctl`` takes about a second, in which a fast publisher may
    finish: a kill "at message 500" would hit an idle connection. Instead one
    ``rabbitmqctl eval`` runs on the broker for the whole test: it finds the
    connection named ``name`` and closes it (Connection.Close 320, like
    ``rabbitmqctl close_connection``) once that connection has received
    ``after_bytes[0]`` bytes, then waits for the next connection of that name
    and closes it after ``after_bytes[1]`` bytes, and so on::

        killer = BrokerKiller("my-client", [40_000] * 3)
        killer.arm()        # blocks until the broker side is watching (about a second)
        ...                 # publish: the kills happen mid-stream
        assert killer.join(60) == 3

    :meth:`arm` and :meth:`join` block: call them through ``deferToThread`` or
    ``asyncio.to_thread`` from a running event loop.
    """

    def __init__(
        self,
        name: str,
        after_bytes: list[int],
        node: str | None = None,
        timeout: float = 120.0,
        reason: str = "test kill",
    ) -> None:
        self.name = name
        self.after_bytes = list(after_bytes)
        self.node = node
        self.timeout = timeout
        self.reason = reason
        self.killed: int | None = None
        self.error: BaseException | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="txamqp091-killer-"))
        self._dir.chmod(0o777)  # the broker (user rabbitmq) writes the "armed" file here
        self._armed = self._dir / "armed"
        self._thread: threading.Thread | None = None

    def _expression(self) -> str:
        steps = "[" + ", ".join(str(int(b)) for b in self.after_bytes) + "]"
        if not all(c.isalnum() or c in " -_.:" for c in self.reason):
            raise ValueError(f"reason {self.reason!r}: use letters, digits and -_.: only")
        return f"""
Name = {_erlang_binary(self.name)},
Deadline = erlang:monotonic_time(millisecond) + {int(self.timeout * 1000)},
Late = fun() -> erlang:monotonic_time(millisecond) > Deadline end,
Find = fun() ->
    [P || P <- rabbit_networking:connections(),
          [{{client_properties, Props}}] <-
              [catch rabbit_networking:connection_info(P, [client_properties])],
          is_list(Props),
          lists:keyfind(<<"connection_name">>, 1, Props) =:=
              {{<<"connection_name">>, longstr, Name}}]
end,
Watch = fun WatchLoop(P, Bytes) ->
    case Late() of
        true -> timeout;
        false ->
            case catch rabbit_networking:connection_info(P, [recv_oct]) of
                [{{recv_oct, N}}] when is_integer(N), N >= Bytes ->
                    rabbit_networking:close_connection(P, "{self.reason}"), killed;
                [{{recv_oct, _}}] -> timer:sleep(2), WatchLoop(P, Bytes);
                _ -> gone
            end
    end
end,
Step = fun StepLoop(Bytes, Killed) ->
    case Late() of
        true -> timeout;
        false ->
            case [P || P <- Find(), not lists:member(P, Killed)] of
                [] -> timer:sleep(5), StepLoop(Bytes, Killed);
                [P | _] ->
                    case Watch(P, Bytes) of
                        killed -> {{killed, P}};
                        gone -> StepLoop(Bytes, Killed);
                        timeout -> timeout
                    end
            end
    end
end,
Run = fun RunLoop([], Killed) -> length(Killed);
          RunLoop([Bytes | Rest], Killed) ->
              case Step(Bytes, Killed) of
                  {{killed, P}} -> RunLoop(Rest, [P | Killed]);
                  timeout -> length(Killed)
              end
      end,
ok = file:write_file("{self._armed}", <<"armed">>),
Run({steps}, []).
"""

    def arm(self, timeout: float = 30.0) -> None:
        """Start watching; return once the broker side is running."""
        if self._thread is not None:
            raise RuntimeError("already armed")
        expression = self._expression()

        def run() -> None:
            try:
                result = rabbitmqctl("eval", expression, node=self.node, timeout=self.timeout + 30)
                self.killed = int(result.stdout.strip().splitlines()[-1])
            except BaseException as exc:  # reported by join()
                self.error = exc

        self._thread = threading.Thread(target=run, name=f"BrokerKiller:{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._armed.exists():
            if not self._thread.is_alive():
                raise RuntimeError(f"the broker-side killer did not start: {self.error}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the broker-side killer was not armed within {timeout} s")
            time.sleep(0.01)

    def join(self, timeout: float = 60.0) -> int:
        """Wait until every kill happened (or the killer timed out); return how many did."""
        try:
            if self._thread is None:
                raise RuntimeError("not armed")
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"the broker-side killer still runs after {timeout} s")
            if self.error is not None:
                raise self.error
            assert self.killed is not None
            return self.killed
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)


# -- a private broker node --------------------------------------------------------------------------


class BrokerNode:
    """A RabbitMQ node of the tests' own; see :func:`private_node`."""

    def __init__(self, name: str, port: int, dist_port: int, base: Path) -> None:
        self.name = name
        self.port = port
        self.dist_port = dist_port
        self.base = base
        self.pid_file = base / "node.pid"
        self.log_file = base / "log" / f"{name}.log"

    def __repr__(self) -> str:
        return f"<BrokerNode {self.name} amqp=127.0.0.1:{self.port}>"

    def url(self, query: str = "") -> str:
        url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        return f"{url}?{query}" if query else url

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return rabbitmqctl(*args, node=self.name, timeout=timeout)

    def stop_app(self) -> None:
        """Stop the RabbitMQ application (the Erlang node stays up): every client
        connection is closed and the AMQP port stops listening."""
        self.ctl("stop_app", timeout=120)

    def start_app(self) -> None:
        """Start the application again and wait until it accepts connections."""
        self.ctl("start_app", timeout=120)
        self.ctl("await_startup", "--timeout", "60", timeout=90)

    def set_watermark(self, fraction: float) -> None:
        """``set_vm_memory_high_watermark``: 0 raises a memory alarm at once (publishers
        block); the default is 0.4. Restore it in a ``finally``."""
        self.ctl("set_vm_memory_high_watermark", str(fraction))

    def close_named_connections(self, name: str, reason: str = "closed by the test") -> int:
        return close_named_connections(name, reason, node=self.name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- the node's life: prepare once, then boot / kill / boot again -------------------------

    def prepare(self, config: str = "") -> None:
        """Write the node's own config and env files into :attr:`base` (owned by ``rabbitmq``).

        ``config`` is appended to ``rabbitmq.conf`` (which already sets the listener).
        """
        base = self.base
        (base / "mnesia").mkdir(exist_ok=True)
        (base / "log").mkdir(exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        # Our own config and env files: the system ones name the shared node and its port.
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n{config}"
        )
        (base / "rabbitmq-env.conf").write_text(
            "ERL_EPMD_ADDRESS=127.0.0.1\n"
            'export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"\n'
        )
        _chown_rabbitmq(base)

    def environment(self) -> dict[str, str]:
        base = self.base
        return dict(
            os.environ,
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(self.pid_file),
        )

    def launch(self, timeout: float = 60.0) -> None:
        """``rabbitmq-server -detached``: returns once the VM is started, not yet booted."""
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()  # a killed VM leaves its pid file behind
        subprocess.run(
            ["rabbitmq-server", "-detached"],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    def wait_booted(self, timeout: float = 60.0) -> None:
        """Wait until the launched node runs the RabbitMQ application."""
        result = rabbitmqctl(
            "wait",
            str(self.pid_file),
            "--timeout",
            str(int(max(1.0, timeout))),
            node=self.name,
            timeout=timeout + 15,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"node {self.name} did not start: {result.stdout}{result.stderr}\n{self.log_tail()}"
            )

    def boot(self, timeout: float = 60.0) -> None:
        """Launch the node and wait until it runs (a killed node comes back this way)."""
        deadline = time.monotonic() + timeout
        self.launch(timeout)
        self.wait_booted(deadline - time.monotonic())

    def os_pid(self) -> int | None:
        """The operating-system pid of the node's Erlang VM, or None when it is not running."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        # A zombie (state Z, after the command name) is dead: a container's init may
        # never reap the detached VM.
        if stat[stat.rindex(")") + 2 :].startswith("Z"):
            return None
        return pid

    def kill(self) -> float:
        """SIGKILL the node's Erlang VM: no goodbye to clients or to the rest of a cluster.

        Returns the monotonic time the signal was sent, once the VM is gone."""
        pid = self.os_pid()
        if pid is None:
            raise RuntimeError(f"node {self.name} is not running")
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.os_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        return killed_at

    def rss_bytes(self) -> int:
        """Resident memory of the node's VM (0 when it is not running)."""
        pid = self.os_pid()
        if pid is None:
            return 0
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        """Stop the node for good (``rabbitmqctl stop``); kill it when that does not work."""
        rabbitmqctl("stop", str(self.pid_file), node=self.name, timeout=90, check=False)
        if self.os_pid() is not None:
            with contextlib.suppress(RuntimeError, OSError):
                self.kill()


def _chown_rabbitmq(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        for item in [root, *(os.path.join(root, d) for d in dirs)]:
            shutil.chown(item, "rabbitmq", "rabbitmq")
        for item in files:
            shutil.chown(os.path.join(root, item), "rabbitmq", "rabbitmq")


def new_node(prefix: str = "txamqp091-test", base: Path | None = None) -> BrokerNode:
    """A node description on free ports, with its files in ``base`` (a new temporary
    directory by default); nothing is started."""
    if shutil.which("rabbitmq-server") is None or shutil.which("rabbitmqctl") is None:
        raise RuntimeError("rabbitmq-server is not installed")
    if base is None:
        base = Path(tempfile.mkdtemp(prefix="txamqp091-node-"))
    base.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}-{secrets.token_hex(4)}@localhost"
    return BrokerNode(name, free_port(), free_port(), base)


@contextlib.contextmanager
def private_node(start_timeout: float = 60.0) -> Iterator[BrokerNode]:
    """Start a RabbitMQ node on free ports with its data in a temporary directory;
    stop it and remove the directory on exit. The shared broker is never touched.

    :raises RuntimeError: the node did not start within ``start_timeout`` seconds.
    """
    node = new_node()
    started = False
    try:
        node.prepare()
        deadline = time.monotonic() + start_timeout
        node.launch(start_timeout)
        started = True
        node.wait_booted(deadline - time.monotonic())
        yield node
    finally:
        if started:
            with contextlib.suppress(Exception):
                node.stop()
        shutil.rmtree(node.base, ignore_errors=True)

"""Cost at scale, both adapters, real broker (issue 13's scale figures).

Scenarios, each in a fresh interpreter per adapter (``twisted``, ``tornado``):

``channels``  one connection, 1,000 channels opened, then a consumer on each (all on
              one exclusive queue): memory per channel and per consumer, as the growth
              of the Python heap (``tracemalloc``) and of the process's RSS, divided by
              the count.
``idle``      100 connections (heartbeat 2 s) left idle for ``--idle-seconds``: client
              CPU µs per second per connection, and RSS per connection.
``large``     one 128 MiB message published (confirm mode) and then consumed back:
              peak RSS above the baseline, as a multiple of the body size, for each
              half (the peak is reset between them through ``/proc/self/clear_refs``).
``recovery``  a reconnecting client (``AMQPClientService`` / ``AMQPClient``) declares
              10,000 queues, binds each (``amq.direct``) and consumes from 1,000 of
              them, over ``--recovery-channels`` surviving channels, the way a user in
              a hurry does: every call fired, then all awaited (``first_s``). Then the
              broker closes the connection (``rabbitmqctl eval``, found by its
              ``connection_name``) and the client reconnects at once (retry delay 0):
              ``recovered_s`` runs from the loss, as the client sees it, to the last
              ``on_recovered`` hook, ``verified_s`` to a passive declare answered on
              every channel after it (everything replayed is then processed), and
              ``ratio`` is ``recovered_s / first_s``; ``client_cpu_s`` and
              ``broker_cpu_s`` are the CPU both used from the loss to the last hook. The queues are not exclusive (an
              exclusive queue of the killed connection may outlive it a moment and
              lock the replay out), have ``x-expires`` as a safety net, and are
              deleted at the end.

Usage::

    .venv/bin/python benchmarks/scale.py                      # everything, ~2 min
    .venv/bin/python benchmarks/scale.py --only channels --adapter twisted
    .venv/bin/python benchmarks/scale.py --channels 200 --idle-seconds 5 --json scale.json

    .venv/bin/python benchmarks/scale.py --only recovery --repeats 3
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ADAPTERS = ("twisted", "tornado")
SCENARIOS = ("channels", "idle", "large", "recovery")
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


Connect = Callable[[str], Awaitable[Any]]
Sleep = Callable[[float], Awaitable[None]]


async def gather(aws: list[Any], mode: str) -> list[Any]:
    if mode == "twisted":
        from twisted.internet import defer

        return list(await defer.gatherResults([defer.ensureDeferred(_aw(x)) for x in aws]))
    import asyncio

    return list(await asyncio.gather(*aws))


async def _aw(x: Any) -> Any:
    return await x


async def scenario(a: argparse.Namespace, connect: Connect, sleep: Sleep) -> dict[str, Any]:
    url = f"amqp://{a.user}:{a.password}@{a.host}:{a.port}/"
    gc.collect()
    if a.worker == "channels":
        n = a.channels
        conn = await connect(url + "?connection_name=bench-scale-channels")
        try:
            first = await conn.channel()
            ok = await first.queue_declare("", exclusive=True)
            gc.collect()
            tracemalloc.start()
            heap0, rss0 = tracemalloc.get_traced_memory()[0], rss()
            channels = await gather([conn.channel() for _ in range(n)], a.adapter)
            gc.collect()
            heap1, rss1 = tracemalloc.get_traced_memory()[0], rss()
            consumers = await gather(
                [ch.basic_consume(ok.queue, auto_ack=True) for ch in channels], a.adapter
            )
            gc.collect()
            heap2, rss2 = tracemalloc.get_traced_memory()[0], rss()
            tracemalloc.stop()
            assert len(consumers) == n
            return {
                "channels": n,
                "heap_bytes_per_channel": (heap1 - heap0) / n,
                "rss_bytes_per_channel": (rss1 - rss0) / n,
                "heap_bytes_per_consumer": (heap2 - heap1) / n,
                "rss_bytes_per_consumer": (rss2 - rss1) / n,
            }
        finally:
            await conn.close()
    if a.worker == "idle":
        n = a.connections
        rss0 = rss()
        conns = await gather(
            [connect(url + f"?heartbeat=2&connection_name=bench-scale-idle-{i}") for i in range(n)],
            a.adapter,
        )
        await sleep(2.0)
        gc.collect()
        rss1 = rss()
        c0, t0 = cpu(), time.monotonic()
        await sleep(a.idle_seconds)
        c1, t1 = cpu(), time.monotonic()
        await gather([c.close() for c in conns], a.adapter)
        return {
            "connections": n,
            "idle_s": t1 - t0,
            "cpu_us_per_s_per_connection": (c1 - c0) / (t1 - t0) / n * 1e6,
            "cpu_share_of_a_core_pct": (c1 - c0) / (t1 - t0) * 100,
            "rss_bytes_per_connection": (rss1 - rss0) / n,
        }
    if a.worker == "large":
        size = a.large_mib << 20
        conn = await connect(url + "?connection_name=bench-scale-large")
        try:
            ch = await conn.channel()
            await ch.confirm_delivery()
            ok = await ch.queue_declare("", exclusive=True)
            gc.collect()
            reset_peak()
            base = rss()
            body = os.urandom(1024) * (size // 1024)
            t0 = time.monotonic()
            await ch.basic_publish("", ok.queue, body)
            publish_s = time.monotonic() - t0
            publish_peak = peak_rss() - base
            del body
            gc.collect()
            await sleep(0.2)
            reset_peak()
            base2 = rss()
            consumer = await ch.basic_consume(ok.queue, auto_ack=True)
            t0 = time.monotonic()
            message = await consumer.get()
            consume_s = time.monotonic() - t0
            consume_peak = peak_rss() - base2
            assert len(message.body) == size
            return {
                "body_bytes": size,
                "publish_s": publish_s,
                "consume_s": consume_s,
                "publish_peak_rss_over_body": publish_peak / size,
                "consume_peak_rss_over_body": consume_peak / size,
                "peak_reset": reset_peak(),
            }
        finally:
            await conn.close()
    raise ValueError(a.worker)


def broker_pid() -> int | None:
    """The broker's OS process (``rabbitmqctl eval 'os:getpid().'``), to read its CPU time."""
    try:
        out = subprocess.run(
            ["rabbitmqctl", "eval", "os:getpid()."], capture_output=True, text=True, timeout=60
        )
        return int(out.stdout.strip().strip('"'))
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (NaN if unknown)."""
    if pid is None:
        return float("nan")
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def close_named_connection(name: str) -> int:
    """Close, broker-side, the connections named ``name`` (320 CONNECTION_FORCED); how many."""
    expr = (
        f'Name = <<"{name}">>, '
        'length([rabbit_networking:close_connection(P, "killed by the benchmark") '
        "|| P <- rabbit_networking:connections(), "
        "[{client_properties, Props}] <- "
        "[catch rabbit_networking:connection_info(P, [client_properties])], "
        "is_list(Props), "
        'lists:keyfind(<<"connection_name">>, 1, Props) =:= '
        '{<<"connection_name">>, longstr, Name}]).'
    )
    out = subprocess.run(
        ["rabbitmqctl", "eval", expr], capture_output=True, text=True, timeout=120, check=True
    )
    return int(out.stdout.strip().splitlines()[-1])


class Env:
    """One adapter's reconnecting client and loop helpers, for :func:`recovery`."""

    adapter = ""

    def client(self, url: str) -> Any:
        raise NotImplementedError

    async def start(self, client: Any) -> None:
        raise NotImplementedError

    async def stop(self, client: Any) -> None:
        raise NotImplementedError

    async def channel(self, client: Any) -> Any:
        return await client.channel()

    async def to_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    async def sleep(self, s: float) -> None:
        raise NotImplementedError

    def event(self) -> tuple[Callable[[], None], Callable[[], Awaitable[None]]]:
        """A one-shot event: (set, wait)."""
        raise NotImplementedError


async def recovery(a: argparse.Namespace, env: Env) -> dict[str, Any]:
    """The ``recovery`` scenario (see the module docstring)."""
    tag = f"bench-scale-recovery-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    url = f"amqp://{a.user}:{a.password}@{a.host}:{a.port}/?connection_name={tag}"
    nq, nc, nch = a.queues, a.consumers, a.recovery_channels
    client = env.client(url)
    marks: dict[str, float] = {}
    recovered: list[float] = []
    done_set, done_wait = env.event()

    def on_recovered(channel: Any) -> None:
        recovered.append(time.monotonic())
        if "lost" in marks and len(recovered) == nch:
            done_set()

    client.on_recovered.append(on_recovered)
    client.on_disconnected.append(lambda reason: marks.setdefault("lost", time.monotonic()))
    client.on_connected.append(lambda conn: marks.__setitem__("connected", time.monotonic()))
    await env.start(client)
    names = [f"{tag}-q{i}" for i in range(nq)]
    channels = [await env.channel(client) for _ in range(nch)]
    args = {"x-expires": 600_000}
    try:
        t0 = time.monotonic()
        waiters = []
        for i, queue in enumerate(names):
            ch = channels[i % nch]
            waiters.append(ch.queue_declare(queue, arguments=args))
            waiters.append(ch.queue_bind(queue, "amq.direct", queue))  # a key of its own
        consumers = [
            channels[i % nch].basic_consume(names[i], lambda m: None, auto_ack=True)
            for i in range(nc)
        ]
        await gather(waiters + consumers, env.adapter)
        first_s = time.monotonic() - t0
        await env.sleep(0.5)
        beam = await env.to_thread(broker_pid)
        recovered.clear()
        lost_cpu: list[float] = []
        client.on_disconnected.append(
            lambda reason: lost_cpu.extend((cpu(), process_cpu(beam))) if not lost_cpu else None
        )
        t_kill = time.monotonic()
        killed = await env.to_thread(close_named_connection, tag)
        await done_wait()
        t_hook = time.monotonic()
        client_cpu_s, broker_cpu_s = cpu() - lost_cpu[0], process_cpu(beam) - lost_cpu[1]
        # Everything replayed is processed once a request sent after it is answered.
        await gather(
            [ch.queue_declare(names[i], passive=True) for i, ch in enumerate(channels)], env.adapter
        )
        t_verified = time.monotonic()
        lost = marks["lost"]
        recovered_s = max(recovered) - lost
        return {
            "queues": nq,
            "bindings": nq,
            "consumers": nc,
            "channels": nch,
            "killed": killed,
            "first_s": first_s,
            "kill_call_s": lost - t_kill,
            "reconnect_s": marks["connected"] - lost,
            "recovered_s": recovered_s,
            "verified_s": t_verified - lost,
            "hook_to_verified_s": t_verified - t_hook,
            # CPU from the loss, as the client sees it, to the last hook.
            "client_cpu_s": client_cpu_s,
            "broker_cpu_s": broker_cpu_s,
            "ratio": recovered_s / first_s,
            "verified_ratio": (t_verified - lost) / first_s,
        }
    finally:
        t0 = time.monotonic()
        await gather([channels[i % nch].queue_delete(q) for i, q in enumerate(names)], env.adapter)
        print(f"deleted {nq} queues in {time.monotonic() - t0:.2f} s", file=sys.stderr)
        await env.stop(client)


class TwistedEnv(Env):
    adapter = "twisted"

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def client(self, url: str) -> Any:
        from txamqp091.twisted import AMQPClientService

        return AMQPClientService(self.reactor, url, retry_policy=lambda attempt: 0.0)

    async def start(self, client: Any) -> None:
        client.startService()
        await client.when_connected()

    async def stop(self, client: Any) -> None:
        await client.stopService()

    async def to_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        from twisted.internet import threads

        return await threads.deferToThread(fn, *args)

    async def sleep(self, s: float) -> None:
        from twisted.internet import task

        await task.deferLater(self.reactor, s, lambda: None)

    def event(self) -> tuple[Callable[[], None], Callable[[], Awaitable[None]]]:
        from twisted.internet import defer

        d: defer.Deferred[None] = defer.Deferred()

        def fire() -> None:
            if not d.called:
                d.callback(None)

        async def wait() -> None:
            await d

        return fire, wait


class AsyncioEnv(Env):
    adapter = "tornado"

    def client(self, url: str) -> Any:
        from txamqp091.tornado import AMQPClient

        return AMQPClient(url, retry_policy=lambda attempt: 0.0)

    async def start(self, client: Any) -> None:
        await client.start()
        await client.when_connected()

    async def stop(self, client: Any) -> None:
        await client.stop()

    async def to_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        import asyncio

        return await asyncio.to_thread(fn, *args)

    async def sleep(self, s: float) -> None:
        import asyncio

        await asyncio.sleep(s)

    def event(self) -> tuple[Callable[[], None], Callable[[], Awaitable[None]]]:
        import asyncio

        e = asyncio.Event()

        async def wait() -> None:
            await e.wait()

        return e.set, wait


def run_worker(a: argparse.Namespace) -> int:
    result: dict[str, Any] = {}
    if a.adapter == "twisted":
        from twisted.internet import defer, task

        from txamqp091.twisted import connect as tw_connect

        async def main(reactor: Any) -> None:
            def connect(url: str) -> Any:
                return tw_connect(reactor, url)

            def sleep(s: float) -> Any:
                return task.deferLater(reactor, s, lambda: None)

            if a.worker == "recovery":
                result.update(await recovery(a, TwistedEnv(reactor)))
            else:
                result.update(await scenario(a, connect, sleep))

        try:
            task.react(lambda r: defer.ensureDeferred(main(r)))
        except SystemExit as exc:
            if exc.code:
                result.setdefault("error", f"exit {exc.code}")
    else:
        import asyncio

        from txamqp091.tornado import connect as to_connect

        if a.worker == "recovery":
            result.update(asyncio.run(recovery(a, AsyncioEnv())))
        else:
            result.update(asyncio.run(scenario(a, to_connect, asyncio.sleep)))
    Path(a.out).write_text(json.dumps(result))
    return 0


def run_one(a: argparse.Namespace, scenario_name: str, adapter: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = tmp.name
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--worker", scenario_name,
        "--adapter", adapter, "--out", out, "--channels", str(a.channels),
        "--connections", str(a.connections), "--idle-seconds", str(a.idle_seconds),
        "--large-mib", str(a.large_mib), "--host", a.host, "--port", str(a.port),
        "--user", a.user, "--password", a.password, "--queues", str(a.queues),
        "--consumers", str(a.consumers), "--recovery-channels", str(a.recovery_channels),
    ]  # fmt: skip
    load = os.getloadavg()[0]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        try:
            result: dict[str, Any] = json.loads(Path(out).read_text() or "{}")
        except ValueError:
            result = {}
        if not result:
            result = {"error": f"worker exited {proc.returncode}: {proc.stderr[-1500:]}"}
        elif "error" in result:
            result["error"] += f": {proc.stderr[-1500:]}"
    except subprocess.TimeoutExpired:
        result = {"error": "worker killed after 600 s"}
    finally:
        os.unlink(out)
    result.update(scenario=scenario_name, adapter=adapter, loadavg_1m=load)
    return result


def rounded(r: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (round(v, 3) if isinstance(v, float) else v)
        for k, v in r.items()
        if k not in ("scenario", "adapter")
    }


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric figure's median over the runs that did not fail."""
    ok = [r for r in runs if "error" not in r]
    keys = [k for k, v in (ok[0] if ok else {}).items() if isinstance(v, (int, float))]
    return {"runs": len(ok), **{k: statistics.median(r[k] for r in ok) for k in keys}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", help=f"comma-separated scenarios ({','.join(SCENARIOS)})")
    p.add_argument("--adapter", choices=ADAPTERS, action="append")
    p.add_argument("--channels", type=int, default=1000)
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--idle-seconds", type=float, default=20.0)
    p.add_argument("--large-mib", type=int, default=128)
    p.add_argument("--queues", type=int, default=10_000, help="recovery: queues (and bindings)")
    p.add_argument("--consumers", type=int, default=1000, help="recovery: consumers")
    p.add_argument("--recovery-channels", type=int, default=1, help="recovery: channels")
    p.add_argument("--repeats", type=int, default=1, help="runs of each scenario (medians)")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--host", default=os.environ.get("AMQP_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("AMQP_PORT", "5672")))
    p.add_argument("--user", default=os.environ.get("AMQP_USER", "guest"))
    p.add_argument("--password", default=os.environ.get("AMQP_PASSWORD", "guest"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        a.adapter = a.adapter[0] if isinstance(a.adapter, list) else a.adapter
        return run_worker(a)
    scenarios = a.only.split(",") if a.only else list(SCENARIOS)
    adapters = a.adapter or list(ADAPTERS)
    results = []
    for name in scenarios:
        for adapter in adapters:
            runs = []
            for _ in range(a.repeats):
                r = run_one(a, name, adapter)
                runs.append(r)
                results.append(r)
                print(f"{name:<9} {adapter:<8} {rounded(r)}", flush=True)
            if a.repeats > 1:
                print(f"{name:<9} {adapter:<8} median {rounded(medians(runs))}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "results": results}, indent=1))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

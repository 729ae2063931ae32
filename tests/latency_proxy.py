"""A TCP proxy on loopback that delays every client→server chunk by a fixed time.

Why: a Redis on the same machine answers in tens of microseconds, so a server that
blocks its event loop on every state command looks as fast as one that awaits them.
Across a network each command costs a round trip; putting this proxy between the
server and Redis adds that cost (e.g. 1 ms per command) and shows whether the server
overlaps its waits. It lives in ``tests/`` (the benchmarks put ``tests/`` on
``sys.path``) so that tests and benchmarks use one implementation.

Behaviour:

- Each chunk read from the client is written to the target ``delay_s`` after it
  arrived. The deadlines grow with arrival time and one flush writes every chunk whose
  deadline has passed, oldest first, so the byte order is kept even when timers fire
  together. Reading goes on while chunks wait: the delay is latency, not a throughput
  cap (pipelined commands each wait ``delay_s``, not ``n × delay_s``).
- Target→client data is forwarded at once: one delay per round trip is enough.
- Chunks are passed on as the ``bytes`` objects the event loop produced: no copies.
- Flow control: reading from a side stops while more than :data:`MAX_PENDING` bytes
  wait for their deadline or while the other side's socket buffer is full.
- If the target refuses the connection, the client's connection is closed.

Use it from synchronous code (its event loop runs in a daemon thread)::

    with LatencyProxy("127.0.0.1", 6379, delay_s=0.001) as proxy:
        redis.Redis(port=proxy.port)

or as a process (for benchmarks, so it does not share a GIL with the load generator)::

    python tests/latency_proxy.py TARGET_HOST TARGET_PORT --delay-ms 1

which prints ``port N`` once it listens and serves until terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import signal
import sys
import threading
from types import TracebackType

__all__ = ["LatencyProxy", "MAX_PENDING"]

#: Bytes of one connection that may wait for their deadline before the proxy stops
#: reading from the client: bounds memory per connection (a 1 MiB value still streams,
#: in pieces) while leaving room for any realistic pipeline of commands.
MAX_PENDING = 256 * 1024
#: Seconds start() waits for the listening socket: the loop starts in milliseconds, so
#: this only bounds a broken start.
START_TIMEOUT_S = 10.0
#: Seconds stop() waits for the loop thread to finish closing connections.
STOP_TIMEOUT_S = 10.0


class _Connection:
    """One proxied connection: the client's transport, the target's, and the queue of
    delayed client→target chunks."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay_s: float, connections: set[_Connection]) -> None:
        self.loop = loop
        self.delay_s = delay_s
        self.connections = connections
        self.client: asyncio.Transport | None = None
        self.target: asyncio.Transport | None = None
        # (number, deadline, chunk) in arrival order; numbers count the chunks received.
        self.pending: collections.deque[tuple[int, float, bytes]] = collections.deque()
        self.pending_bytes = 0
        self.received = 0
        self.client_eof = False
        self.client_gone = False
        self.target_paused_writing = False
        self.client_read_paused = False

    # -- client → target (delayed) ------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        deadline = self.loop.time() + self.delay_s
        self.received += 1
        self.pending.append((self.received, deadline, data))
        self.pending_bytes += len(data)
        self.loop.call_at(deadline, self.flush, self.received)
        self._update_client_reading()

    def flush(self, through: int = 0) -> None:
        """Write, in arrival order, every chunk whose deadline has passed, and at least
        chunk number ``through`` and those before it (its timer fired: the loop runs a
        timer when its deadline is within the clock's resolution, so ``time()`` may
        still read a hair below it)."""
        if self.target is None:
            return  # still connecting: _connect_target flushes once connected
        now = self.loop.time()
        while self.pending and (self.pending[0][0] <= through or self.pending[0][1] <= now):
            _, _, data = self.pending.popleft()
            self.pending_bytes -= len(data)
            if self.target is not None and not self.target.is_closing():
                self.target.write(data)
        if not self.pending and self.target is not None and not self.target.is_closing():
            if self.client_gone:
                self.target.close()
            elif self.client_eof and self.target.can_write_eof():
                self.target.write_eof()
        self._update_client_reading()

    def client_ended(self, lost: bool) -> None:
        if lost:
            self.client_gone = True
        else:
            self.client_eof = True
        if self.target is None:
            return
        if not self.pending:
            self.flush()

    def _update_client_reading(self) -> None:
        if self.client is None or self.client.is_closing() or self.client_eof:
            return
        want_pause = self.pending_bytes > MAX_PENDING or self.target_paused_writing or self.target is None
        if want_pause and not self.client_read_paused:
            self.client.pause_reading()
            self.client_read_paused = True
        elif not want_pause and self.client_read_paused:
            self.client.resume_reading()
            self.client_read_paused = False

    # -- target → client (immediate) ------------------------------------------------------

    def from_target(self, data: bytes) -> None:
        if self.client is not None and not self.client.is_closing():
            self.client.write(data)

    def target_ended(self) -> None:
        if self.client is not None and not self.client.is_closing():
            self.client.close()
        if self.target is not None:
            self.target.close()
        self.connections.discard(self)

    def close(self) -> None:
        for transport in (self.client, self.target):
            if transport is not None:
                transport.abort()
        self.connections.discard(self)


class _ClientSide(asyncio.Protocol):
    def __init__(self, proxy: LatencyProxy) -> None:
        self.proxy = proxy
        self.conn: _Connection | None = None
        self.connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        loop = asyncio.get_running_loop()
        self.conn = _Connection(loop, self.proxy.delay_s, self.proxy._connections)
        self.conn.client = transport
        self.proxy._connections.add(self.conn)
        transport.pause_reading()  # until the target is connected
        self.conn.client_read_paused = True
        self.connecting = loop.create_task(self._connect_target(self.conn))

    async def _connect_target(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_connection(
                lambda: _TargetSide(conn), self.proxy.target_host, self.proxy.target_port
            )
        except OSError:
            conn.close()
            return
        if conn.client is None or conn.client.is_closing():
            transport.close()
            return
        conn.target = transport
        conn.flush()

    def data_received(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.from_client(data)

    def eof_received(self) -> bool:
        assert self.conn is not None
        self.conn.client_ended(lost=False)
        return True  # keep the write side open for the target's answer

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.conn.client_ended(lost=True)

    def pause_writing(self) -> None:
        if self.conn is not None and self.conn.target is not None:
            self.conn.target.pause_reading()

    def resume_writing(self) -> None:
        if self.conn is not None and self.conn.target is not None and not self.conn.target.is_closing():
            self.conn.target.resume_reading()


class _TargetSide(asyncio.Protocol):
    def __init__(self, conn: _Connection) -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        self.conn.from_target(data)

    def eof_received(self) -> bool:
        self.conn.target_ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.target_ended()

    def pause_writing(self) -> None:
        self.conn.target_paused_writing = True
        self.conn._update_client_reading()

    def resume_writing(self) -> None:
        self.conn.target_paused_writing = False
        self.conn._update_client_reading()


class LatencyProxy:
    """A delaying TCP proxy on 127.0.0.1 whose event loop runs in a background thread.

    ``port`` is the listening port once :meth:`start` (or ``with``) returned.
    """

    def __init__(self, target_host: str, target_port: int, delay_s: float = 0.001, port: int = 0) -> None:
        if delay_s < 0:
            raise ValueError("delay_s must not be negative")
        self.target_host = target_host
        self.target_port = target_port
        self.delay_s = delay_s
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._connections: set[_Connection] = set()

    def __repr__(self) -> str:
        return f"LatencyProxy(127.0.0.1:{self._port} -> {self.target_host}:{self.target_port}, {self.delay_s}s)"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the proxy is not running")
        return self._port

    def start(self) -> LatencyProxy:
        if self._thread is not None:
            raise RuntimeError("the proxy was already started")
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError("the latency proxy did not start")
        if self._error is not None:
            self._thread.join(STOP_TIMEOUT_S)
            raise RuntimeError(f"the latency proxy could not listen: {self._error}") from self._error
        return self

    def stop(self) -> None:
        """Stop listening, drop every connection and end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(self._shutdown)
        thread.join(STOP_TIMEOUT_S)
        self._port = None

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- loop thread ----------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except OSError as exc:  # could not listen
            self._error = exc
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.get_running_loop().create_server(
            lambda: _ClientSide(self), "127.0.0.1", self._requested_port
        )
        async with server:
            self._port = int(server.sockets[0].getsockname()[1])
            self._ready.set()
            await self._stopping.wait()
            server.close()
            for conn in list(self._connections):
                conn.close()
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:  # targets still being connected to
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="TCP proxy adding a fixed delay to client->server data")
    parser.add_argument("target_host")
    parser.add_argument("target_port", type=int)
    parser.add_argument("--delay-ms", type=float, default=1.0, help="delay added to each client->server chunk")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    args = parser.parse_args(argv)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    with LatencyProxy(args.target_host, args.target_port, args.delay_ms / 1000, args.port) as proxy:
        print(f"port {proxy.port}", flush=True)
        stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

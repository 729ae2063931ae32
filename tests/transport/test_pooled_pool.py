"""PooledHttpTransport's pool: stale connections, the resend rule, max_connections,
keep-alive expiry and TLS, against real servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import trustme
import uvicorn

import vectorlib
from missile.engine.client import MslClient
from missile.engine.server import MslServer
from missile.errors import MslError, MslException
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.profiles import context_from_keyfile
from missile.transport import pooled
from missile.transport.http import MslAsgiApp
from missile.transport.pooled import PooledHttpTransport

from .conftest import client_keys, echo

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _response(body: bytes) -> bytes:
    """A keep-alive 200 response (no ``Connection: close``, as a server timing out idle
    connections sends)."""
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
        elif name.lower() == b"transfer-encoding":
            assert value.strip() == b"chunked"
            parts = []
            while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
                parts.append((await reader.readexactly(size + 2))[:-2])
            assert await reader.readexactly(2) == b"\r\n"
            return b"".join(parts)
    return await reader.readexactly(length)


async def _exchange(transport: PooledHttpTransport, body: bytes) -> bytes:
    channel = await transport.connect()
    try:
        await channel.write(body)
        await channel.finish()
        out = b""
        while chunk := await channel.read():
            out += chunk
        return out
    finally:
        await channel.close()


# -- servers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _thread_server(handle: Handler, ssl_context: ssl.SSLContext | None = None) -> Iterator[int]:
    """An asyncio server on 127.0.0.1 running in its own thread and event loop (as a
    separate server would: its closes race the client's requests); yields its port."""
    ready = threading.Event()
    state: dict[str, object] = {}

    async def main() -> None:
        stop = asyncio.Event()
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
        state.update(port=server.sockets[0].getsockname()[1], loop=asyncio.get_running_loop(), stop=stop)
        ready.set()
        await stop.wait()
        server.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10), "server did not start"
    try:
        port = state["port"]
        assert isinstance(port, int)
        yield port
    finally:
        loop, stop = state["loop"], state["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@dataclass
class _Script:
    """A blocking server on 127.0.0.1: each accepted connection runs the next step of
    ``steps`` in a thread; the steps record what they saw."""

    steps: list[Callable[[socket.socket], None]]
    requests: list[bytes] = field(default_factory=list)
    accepted: int = 0


def _recv_request(sock: socket.socket, into: list[bytes]) -> bytes:
    """One request with a Content-Length or chunked body, read off a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "client went away"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "client went away"
        rest += chunk
    into.append(rest)
    return rest


def _wait_readable(sock: socket.socket) -> None:
    """Until the client's next request is in this socket's receive buffer (unread)."""
    readable, _, _ = select.select([sock], [], [], 10)
    assert readable, "no request came"


def _serve_forever(script: _Script) -> Callable[[socket.socket], None]:
    def step(sock: socket.socket) -> None:
        with contextlib.suppress(AssertionError, OSError):
            while True:
                sock.sendall(_response(_recv_request(sock, script.requests)))

    return step


@contextlib.contextmanager
def _scripted(script: _Script) -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    threads: list[threading.Thread] = []

    stopping = False

    def accept() -> None:
        with contextlib.suppress(OSError):
            for step in script.steps:
                sock, _ = listener.accept()
                if stopping:
                    sock.close()
                    return
                script.accepted += 1

                def run(sock: socket.socket = sock, step: Callable[[socket.socket], None] = step) -> None:
                    with sock:
                        step(sock)

                thread = threading.Thread(target=run, daemon=True)
                thread.start()
                threads.append(thread)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{port}/msl"
    finally:
        stopping = True
        if acceptor.is_alive():
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # wakes the acceptor
        acceptor.join(10)
        listener.close()
        for thread in threads:
            thread.join(10)


# -- stale connections -----------------------------------------------------------------------


async def _load(post: Callable[[bytes], Awaitable[bytes]]) -> int:
    """400 requests, 200 one after the other then 8 streams of 25 at once; the number that
    failed (a wrong answer fails the test)."""
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        body = b"message %d" % i
        try:
            answer = await post(body)
        except (MslException, httpx.HTTPError):
            failures += 1
        else:
            assert answer == body

    for i in range(200):
        await one(i)

    async def stream(k: int) -> None:
        for i in range(25):
            await one(1000 * (k + 1) + i)

    await asyncio.wait_for(asyncio.gather(*(stream(k) for k in range(8))), 120)
    return failures


async def _one_response_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer one request as if the connection stayed open, then close it at once."""
    try:
        writer.write(_response(await _read_request(reader)))
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def test_stale_connections_fail_no_more_than_with_httpx() -> None:
    """A server closes every keep-alive connection right after its response: the next
    request on it races the close. The pool checks connections before reuse and resends
    what the server's kernel refused; httpx, measured in the same run, is the bound."""

    async def ours(url: str) -> tuple[int, int]:
        transport = PooledHttpTransport(url, timeout=10)
        try:
            return await _load(lambda body: _exchange(transport, body)), transport.resent
        finally:
            await transport.aclose()

    async def theirs(url: str) -> int:
        async with httpx.AsyncClient(timeout=10) as client:

            async def post(body: bytes) -> bytes:
                return (await client.post(url, content=body)).content

            return await _load(post)

    with _thread_server(_one_response_per_connection) as port:
        url = f"http://127.0.0.1:{port}/msl"
        our_failures, resent = asyncio.run(ours(url))
        httpx_failures = asyncio.run(theirs(url))
    print(f"stale connections: pooled {our_failures}/400 failed ({resent} resent), httpx {httpx_failures}/400")
    assert our_failures <= httpx_failures


def test_reset_after_the_request_is_resent_once() -> None:
    """The server closes a reused connection with the next request unread in its buffer:
    its kernel resets the connection, so the request was provably not read, and it is
    sent again on a fresh connection."""
    script = _Script([])

    def first(sock: socket.socket) -> None:
        sock.sendall(_response(_recv_request(sock, script.requests)))
        _wait_readable(sock)  # the second request arrived; close without reading it

    script.steps = [first, _serve_forever(script)]

    async def run(url: str) -> None:
        transport = PooledHttpTransport(url, timeout=10)
        try:
            assert await _exchange(transport, b"one") == b"one"
            assert await _exchange(transport, b"two") == b"two"
            assert (transport.resent, transport.sockets) == (1, 2)
            assert len(transport._idle) == 1
        finally:
            await transport.aclose()

    with _scripted(script) as url:
        asyncio.run(run(url))
    assert script.requests == [b"one", b"two"]  # each read once


@pytest.mark.parametrize("check_before_reuse", [True, False], ids=["found-closed", "reset-after-eof"])
def test_close_racing_the_request_on_a_reused_connection(check_before_reuse: bool) -> None:
    """The server closes right after its response, before the next request arrives, and
    the event loop has not yet seen the EOF. Checked before reuse, the socket shows the EOF
    and a fresh connection is used without sending anything on the dead one. With the
    check skipped (the EOF arriving just after it), the request meets the server's reset,
    pending behind the EOF, and is resent."""
    closed = threading.Event()
    script = _Script([])

    def first(sock: socket.socket) -> None:
        sock.sendall(_response(_recv_request(sock, script.requests)))
        sock.close()
        closed.set()

    script.steps = [first, _serve_forever(script)]

    async def run(url: str) -> None:
        transport = PooledHttpTransport(url, timeout=10)
        try:
            assert await _exchange(transport, b"one") == b"one"
            assert closed.wait(10)  # blocks the loop: it cannot handle the EOF
            with pytest.MonkeyPatch.context() as patch:
                if not check_before_reuse:
                    patch.setattr(pooled._Connection, "alive", lambda self: True)
                assert await _exchange(transport, b"two") == b"two"
            assert transport.sockets == 2
            assert transport.resent == (0 if check_before_reuse else 1)
        finally:
            await transport.aclose()

    with _scripted(script) as url:
        asyncio.run(run(url))
    assert script.requests == [b"one", b"two"]


def _read_then_close(script: _Script) -> Callable[[socket.socket], None]:
    def step(sock: socket.socket) -> None:
        sock.sendall(_response(_recv_request(sock, script.requests)))
        _recv_request(sock, script.requests)  # read (and maybe acted on), never answered

    return step


def _partial_answer_then_reset(script: _Script) -> Callable[[socket.socket], None]:
    def step(sock: socket.socket) -> None:
        sock.sendall(_response(_recv_request(sock, script.requests)))
        _wait_readable(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    return step


def _reset_first_request(script: _Script) -> Callable[[socket.socket], None]:
    def step(sock: socket.socket) -> None:
        _wait_readable(sock)

    return step


def _reset_second_request(script: _Script) -> Callable[[socket.socket], None]:
    def step(sock: socket.socket) -> None:
        sock.sendall(_response(_recv_request(sock, script.requests)))
        _wait_readable(sock)

    return step


@pytest.mark.parametrize(
    ("step", "bodies"),
    [
        (_read_then_close, [b"one", b"two"]),
        (_partial_answer_then_reset, [b"one", b"two"]),
        (_reset_first_request, [b"one"]),
        (_reset_second_request, [b"one", b"x" * (pooled.COALESCE_LIMIT + 1000)]),
    ],
    ids=["read-then-eof", "response-begun", "fresh-connection", "streamed-request"],
)
def test_requests_the_server_may_have_taken_are_not_resent(
    step: Callable[[_Script], Callable[[socket.socket], None]], bodies: list[bytes]
) -> None:
    """No resend when the server may have read the request (a plain EOF after it), when a
    response began, when the connection was fresh (not stale: refused), or when the
    request streamed (not held whole): the failure is reported."""
    script = _Script([])
    script.steps = [step(script), _serve_forever(script)]

    async def run(url: str) -> None:
        transport = PooledHttpTransport(url, timeout=10)
        try:
            *earlier, last = bodies
            for body in earlier:
                assert await _exchange(transport, body) == body
            with pytest.raises(MslException) as info:
                await asyncio.wait_for(_exchange(transport, last), 20)
            assert info.value.error is MslError.MSL_COMMS_FAILURE
            assert (transport.resent, transport.sockets) == (0, 1)
        finally:
            await transport.aclose()

    with _scripted(script) as url:
        asyncio.run(run(url))
    assert script.accepted == 1


# -- max_connections -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _counting_server(hold_until: int = 0) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """A keep-alive echo server counting its connections (open now, most at once, all).
    With ``hold_until``, requests are answered only when that many are waiting."""
    counts = {"open": 0, "most": 0, "all": 0}
    waiting: list[asyncio.Future[None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts["open"] += 1
        counts["all"] += 1
        counts["most"] = max(counts["most"], counts["open"])
        try:
            while True:
                body = await _read_request(reader)
                if hold_until:
                    turn = asyncio.get_running_loop().create_future()
                    waiting.append(turn)
                    if len(waiting) >= hold_until:
                        for fut in waiting:
                            fut.set_result(None)
                        waiting.clear()
                    await turn
                writer.write(_response(body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            counts["open"] -= 1
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/msl", counts
    finally:
        server.close()


def test_max_connections_caps_concurrent_requests() -> None:
    """Eight requests at once through a pool of two: the server never sees more than two
    connections (it answers only when two requests wait, so both are used), and every
    request succeeds."""

    async def run() -> None:
        async with _counting_server(hold_until=2) as (url, counts):
            transport = PooledHttpTransport(url, timeout=10, max_connections=2)
            try:
                bodies = [b"request %d" % i for i in range(8)]
                answers = await asyncio.wait_for(asyncio.gather(*(_exchange(transport, b) for b in bodies)), 30)
                assert answers == bodies
                assert counts["most"] == 2
                assert counts["all"] == transport.sockets == 2
                assert transport._open == 2 and not transport._waiters
            finally:
                await transport.aclose()
            assert transport._open == 0

    asyncio.run(run())


def test_waiting_for_a_free_connection_is_bounded_by_the_timeout() -> None:
    async def run() -> None:
        async with _counting_server(hold_until=99) as (url, _):  # never answers
            transport = PooledHttpTransport(url, timeout=0.3, max_connections=1)
            busy = await transport.connect()
            await busy.write(b"stuck")
            await busy.finish()
            started = time.monotonic()
            with pytest.raises(MslException) as info:
                await asyncio.wait_for(transport.connect(), 10)
            assert info.value.error is MslError.MSL_COMMS_FAILURE
            assert "no free connection" in str(info.value)
            assert time.monotonic() - started < 5
            assert not transport._waiters
            with pytest.raises(MslException):
                await busy.read()  # the held request times out too
            await busy.close()
            assert transport._open == 0

    asyncio.run(run())


def test_a_closed_connection_hands_its_place_to_a_waiting_request() -> None:
    """With one connection allowed, a request waiting while the other fails gets the
    failed connection's place and a fresh connection."""
    script = _Script([])

    def fail_first(sock: socket.socket) -> None:
        _recv_request(sock, script.requests)  # then close without answering

    script.steps = [fail_first, _serve_forever(script)]

    async def run(url: str) -> None:
        transport = PooledHttpTransport(url, timeout=10, max_connections=1)
        try:
            failing = asyncio.ensure_future(_exchange(transport, b"one"))
            while transport._open == 0:
                await asyncio.sleep(0)
            waiting = asyncio.ensure_future(_exchange(transport, b"two"))
            with pytest.raises(MslException):
                await asyncio.wait_for(failing, 10)
            assert await asyncio.wait_for(waiting, 10) == b"two"
            assert transport.sockets == 2 and transport._open == 1
        finally:
            await transport.aclose()

    with _scripted(script) as url:
        asyncio.run(run(url))


@pytest.mark.parametrize("handed_over", [False, True], ids=["cancelled-while-waiting", "cancelled-when-handed"])
def test_a_cancelled_waiter_loses_no_connection(handed_over: bool) -> None:
    async def run() -> None:
        async with _counting_server() as (url, counts):
            transport = PooledHttpTransport(url, timeout=10, max_connections=1)
            try:
                busy = await transport.connect()
                await busy.write(b"first")
                assert await busy.read() == b"first"
                waiter = asyncio.ensure_future(transport.connect())
                while not transport._waiters:
                    await asyncio.sleep(0)
                if handed_over:
                    await busy.close()  # the connection goes to the waiter, which is then cancelled
                    waiter.cancel()
                else:
                    waiter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waiter
                    await busy.close()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
                assert waiter.cancelled()
                assert len(transport._idle) == 1 and transport._open == 1 and not transport._waiters
                assert await _exchange(transport, b"again") == b"again"
                assert counts["all"] == 1
            finally:
                await transport.aclose()

    asyncio.run(run())


# -- keep-alive expiry -----------------------------------------------------------------------


@pytest.mark.parametrize(("expiry", "sockets"), [(0.05, 2), (None, 1), (30.0, 1)])
def test_idle_connections_expire(expiry: float | None, sockets: int) -> None:
    """A connection idle past keepalive_expiry is closed, not reused: the server sees a
    new connection."""

    async def run() -> None:
        async with _counting_server() as (url, counts):
            transport = PooledHttpTransport(url, timeout=10, keepalive_expiry=expiry)
            try:
                assert await _exchange(transport, b"one") == b"one"
                await asyncio.sleep(0.2)  # idle time is what is tested
                assert await _exchange(transport, b"two") == b"two"
                assert counts["all"] == transport.sockets == sockets
                assert transport._open == 1
            finally:
                await transport.aclose()

    asyncio.run(run())


def test_pool_parameters_are_checked() -> None:
    with pytest.raises(ValueError):
        PooledHttpTransport("http://127.0.0.1/", max_connections=0)
    with pytest.raises(ValueError):
        PooledHttpTransport("http://127.0.0.1/", max_idle=-1)
    with pytest.raises(ValueError):
        PooledHttpTransport("http://127.0.0.1/", keepalive_expiry=-1.0)
    with pytest.raises(ValueError):
        PooledHttpTransport("http://127.0.0.1/", ssl_context=ssl.create_default_context())


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def _keep_alive_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            writer.write(_response(await _read_request(reader)))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


def test_https_echo_through_ssl_context(ca: trustme.CA, server_tls: ssl.SSLContext) -> None:
    async def run(url: str) -> None:
        transport = PooledHttpTransport(url, timeout=10, ssl_context=_trusting(ca))
        try:
            for i in range(5):
                assert await _exchange(transport, b"secret %d" % i) == b"secret %d" % i
            big = bytes(range(256)) * 1000  # streamed with chunked encoding
            assert await _exchange(transport, big) == big
            assert transport.sockets == 1
        finally:
            await transport.aclose()

    with _thread_server(_keep_alive_echo, server_tls) as port:
        asyncio.run(run(f"https://127.0.0.1:{port}/msl"))


def test_https_stale_connections_are_replaced(ca: trustme.CA, server_tls: ssl.SSLContext) -> None:
    """Over TLS too, a connection the server closed after its response is not reused."""

    async def run(url: str) -> None:
        transport = PooledHttpTransport(url, timeout=10, ssl_context=_trusting(ca))
        try:
            for i in range(10):
                assert await _exchange(transport, b"m%d" % i) == b"m%d" % i
                await asyncio.sleep(0.01)  # the server's close arrives while the connection is idle
            assert transport.sockets == 10
        finally:
            await transport.aclose()

    with _thread_server(_one_response_per_connection, server_tls) as port:
        asyncio.run(run(f"https://127.0.0.1:{port}/msl"))


@pytest.mark.parametrize(
    ("trust", "names", "expected"),
    [
        ("other-ca", ("127.0.0.1",), "certificate not trusted: unable to get local issuer certificate"),
        ("system-cas", ("127.0.0.1",), "certificate not trusted: unable to get local issuer certificate"),
        ("our-ca", ("example.org",), "certificate not trusted: ip address mismatch"),
    ],
)
def test_untrusted_certificates_fail_clearly(ca: trustme.CA, trust: str, names: tuple[str, ...], expected: str) -> None:
    """A certificate from a CA the context does not trust, or for another host, fails the
    connection with MSL_COMMS_FAILURE saying why."""
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(server_tls)
    context = {"other-ca": _trusting(trustme.CA()), "system-cas": None, "our-ca": _trusting(ca)}[trust]

    async def run(port: int) -> None:
        transport = PooledHttpTransport(f"https://127.0.0.1:{port}/", timeout=10, ssl_context=context)
        with pytest.raises(MslException) as info:
            await asyncio.wait_for(_exchange(transport, b"x"), 20)
        assert info.value.error is MslError.MSL_COMMS_FAILURE
        assert expected in str(info.value).lower()
        assert transport._open == 0 and transport.sockets == 0

    with _thread_server(_keep_alive_echo, server_tls) as port:
        asyncio.run(run(port))


@pytest.fixture(scope="module")
def msl_https_url(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The MSL echo server of conftest.py under uvicorn, over TLS."""
    directory = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    keys = KeyFile.from_dict(vectorlib.load("01_a_psk_request_encrypted")["keys"])
    keys.time_ms = None
    app = MslAsgiApp(MslServer(context_from_keyfile(keys).ctx, echo))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        ssl_keyfile=str(directory / "key.pem"), ssl_certfile=str(directory / "cert.pem"),
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"https://127.0.0.1:{port}/msl"
    server.should_exit = True
    thread.join(timeout=10)


def test_msl_over_https(ca: trustme.CA, msl_https_url: str) -> None:
    """A key exchange and messages on the established session, over TLS on one connection."""

    async def run() -> None:
        keys = client_keys()
        ctx = context_from_keyfile(keys).ctx
        transport = PooledHttpTransport(msl_https_url, timeout=10, ssl_context=_trusting(ca))
        client = MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, keys, "SYMMETRIC_WRAPPED"))
        try:
            for i in range(5):
                reply = await client.request(b"over tls %d" % i)
                assert reply.payload == b"over tls %d|client1|-" % i
            assert transport.sockets == 1
        finally:
            await transport.aclose()

    asyncio.run(run())

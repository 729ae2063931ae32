"""The front door (``import missile``): Server routes and Request, AsyncClient and its
blocking twin, over real HTTP (uvicorn on a loopback port, Starlette mounts)."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

import missile
from api.helpers import serve, write_keys
from missile.encoding import EncoderFormat
from missile.engine.client import MslClient
from missile.engine.server import MslServer, Reply
from missile.engine.transport import LoopbackTransport
from missile.keyx.requests import key_request_factory
from missile.messages import JSON_PREFERRED
from missile.profiles import context_from_keyfile
from missile.transport.http import route_path

USERS = {"alice@example.com": "alice-pw"}


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop (the fixtures stay synchronous)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 60))

    return run


seen: list[missile.Request] = []


def build_server(directory: Path, state: str = ":memory:") -> missile.Server:
    server_keys = directory / "server.json"
    server = missile.Server(server_keys, state=state, users=USERS)

    @server.route("/echo")
    async def echo(request: missile.Request) -> bytes:
        seen.append(request)
        return b"echo:" + request.payload

    @server.route("/info")
    async def info(request: missile.Request) -> missile.Reply:
        user = request.user.identity if request.user else "-"
        text = f"{request.path}|{request.identity}|{user}|{request.non_replayable}|{request.headers.get('host')}"
        return missile.Reply(text.encode())

    @server.route("/big")
    async def big(request: missile.Request) -> missile.Reply:
        async def pieces() -> AsyncIterator[bytes]:
            for i in range(8):
                yield bytes([65 + i]) * 50_000

        return missile.Reply(pieces())

    @server.route("/quiet")
    async def quiet(request: missile.Request) -> missile.Reply:
        seen.append(request)
        return missile.Reply(respond=False)

    return server


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    write_keys(directory)
    return directory


@pytest.fixture(scope="module")
def url(keys: Path) -> Iterator[str]:
    """The server alone, and the same server mounted at /msl in Starlette."""
    server = build_server(keys)
    app = Starlette(routes=[Mount("/msl", app=server.asgi())])
    with serve(app) as base:
        yield base


def client(keys: Path, url: str, **kw: object) -> missile.AsyncClient:
    return missile.AsyncClient(f"{url}/msl", keys=keys / "client.json", **kw)  # type: ignore[arg-type]


# -- routing, Request -------------------------------------------------------------------


@sync
async def test_routes_and_request_fields(keys: Path, url: str) -> None:
    async with client(keys, url) as c:
        r = await c.request("/info", b"", user=missile.EmailPassword("alice@example.com", "alice-pw"))
        assert r.payload.decode() == f"/info|client1|alice@example.com|False|{url.removeprefix('http://')}"
        assert r.user_id_token is not None
        r = await c.request("/info", b"x", user="alice@example.com", non_replayable=True)
        assert r.payload.decode().split("|")[2:4] == ["alice@example.com", "True"]
        seen.clear()
        r = await c.request("/echo?x=1", b"hi")
        assert r.payload == b"echo:hi"
        request = seen[-1]
        assert request.path == "/echo"
        assert request.client is not None and request.client[0] == "127.0.0.1"
        assert request.headers["content-type"] == "application/octet-stream"
        assert request.message_id == request.header.message_id


@sync
async def test_trailing_slash_and_mount_point_need_no_redirect(keys: Path, url: str) -> None:
    async with client(keys, url) as c:
        assert (await c.request("/echo/", b"a")).payload == b"echo:a"
        assert (await c.request("echo", b"b")).payload == b"echo:b"
    # A base URL with a trailing slash joins the same way.
    async with missile.AsyncClient(f"{url}/msl/", keys=keys / "client.json") as c:
        assert (await c.request("/echo", b"c")).payload == b"echo:c"


@sync
async def test_unknown_path_is_an_msl_error_naming_it(keys: Path, url: str) -> None:
    async with client(keys, url) as c:
        with pytest.raises(missile.MslErrorResponse) as info:
            await c.request("/nowhere", b"x")
    assert info.value.error is missile.server.NOT_FOUND
    assert info.value.response_code is missile.ResponseCode.FAIL
    assert info.value.user_message == "no route for /nowhere"
    with pytest.raises(missile.ConfigError, match="already has a handler"):
        build_server(keys).route("/echo/")(_async_handler)
    with pytest.raises(missile.ConfigError, match="async function"):
        build_server(keys).route("/sync")(lambda request: b"")  # type: ignore[type-var]


async def _async_handler(request: missile.Request) -> bytes:
    return b""


def test_route_path_strips_the_mount_point() -> None:
    assert route_path({"path": "/msl/notes", "root_path": "/msl"}) == "/notes"
    assert route_path({"path": "/msl", "root_path": "/msl"}) == "/"
    assert route_path({"path": "/notes", "root_path": "/msl"}) == "/notes"  # already stripped
    assert route_path({"path": "/mslx/a", "root_path": "/msl"}) == "/mslx/a"
    assert route_path({}) == "/"


# -- the empty payload ------------------------------------------------------------------


@sync
async def test_empty_payload_reaches_the_handler_on_a_fresh_client(keys: Path, url: str) -> None:
    seen.clear()
    async with client(keys, url) as c:
        r = await c.request("/echo", b"")
    assert r.payload == b"echo:"
    assert len(seen) == 1 and seen[0].payload == b""
    assert r.messages == 4  # a real handshake first, then the message under the new master token


@sync
async def test_empty_payload_engine_level_with_every_key_exchange(keys: Path) -> None:
    """The engine fix, over the loopback transport: a fresh client's empty message is
    delivered whatever the scheme, and a renewable token's renewal waits for data."""
    server_keys = missile.KeyFile.load(keys / "server.json")
    client_keys = missile.KeyFile.load(keys / "client.json")
    delivered: list[bytes] = []

    async def handler(request: missile.Request) -> Reply:
        delivered.append(request.payload)
        return Reply(b"ok")

    for scheme in ("SYMMETRIC_WRAPPED", "JWK_LADDER", "DIFFIE_HELLMAN"):
        server = MslServer(context_from_keyfile(server_keys).ctx, handler)
        ctx = context_from_keyfile(client_keys).ctx
        engine = MslClient(
            ctx,
            LoopbackTransport(server.serve_channel),
            key_request_factory=key_request_factory(ctx, client_keys, scheme),
        )
        assert (await engine.request(b"")).payload == b"ok"
        assert (await engine.request(b"")).messages == 2  # session reused, no handshake
    assert delivered == [b""] * 6


# -- streaming, one-way -----------------------------------------------------------------


@sync
async def test_stream_reads_chunks_as_they_arrive(keys: Path, url: str) -> None:
    async with client(keys, url) as c:
        async with c.stream("/big") as response:
            chunks = [chunk async for chunk in response]
        assert b"".join(chunks) == b"".join(bytes([65 + i]) * 50_000 for i in range(8))
        assert len(chunks) > 1


@sync
async def test_one_way_delivers_without_a_response(keys: Path, url: str) -> None:
    async with client(keys, url) as c:
        await c.request("/echo", b"session")  # keys first, so the one-way message asks for none
        seen.clear()
        assert await c.one_way("/quiet", b"fire") is None
    assert [r.payload for r in seen] == [b"fire"]


# -- the blocking twin ------------------------------------------------------------------


def test_blocking_client_has_every_method_of_the_async_one() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        names = {n for n in dir(cls) if not n.startswith("_")}
        return {n: inspect.signature(getattr(cls, n)) for n in names if callable(getattr(cls, n))}

    async_methods, blocking = public(missile.AsyncClient), public(missile.Client)
    renamed = {"aclose": "close"}
    for name, signature in async_methods.items():
        twin = renamed.get(name, name)
        assert twin in blocking, name
        assert list(signature.parameters) == list(blocking[twin].parameters), name
    assert list(inspect.signature(missile.AsyncClient).parameters) == [
        p for p in inspect.signature(missile.Client).parameters if p != "call_timeout"
    ]
    assert hasattr(missile.Client, "__enter__") and hasattr(missile.AsyncClient, "__aenter__")


def test_blocking_client_request_stream_one_way(keys: Path, url: str, tmp_path: Path) -> None:
    state = tmp_path / "client.db"
    with missile.Client(f"{url}/msl", keys=keys / "client.json", state=state) as c:
        assert c.request("/echo", b"x").payload == b"echo:x"
        with c.stream("/big") as response:
            assert len(response.read()) == 400_000
            assert response.master_token is not None
        seen.clear()
        assert c.one_way("/quiet", b"y") is None
    assert [r.payload for r in seen] == [b"y"]
    # The session survived in the state file: the next client needs no key exchange.
    with missile.Client(f"{url}/msl", keys=keys / "client.json", state=state) as c:
        assert c.request("/echo", b"z").messages == 2


# -- resources --------------------------------------------------------------------------


@sync
async def test_context_managers_close_what_they_hold(keys: Path, url: str, tmp_path: Path) -> None:
    c = client(keys, url, state=tmp_path / "c.db")
    async with c:
        await c.request("/echo", b"x")
        pool = c._transport.pool
        assert pool._idle  # a kept-alive connection
    assert not pool._idle
    with pytest.raises(RuntimeError, match="closed"):
        await c.request("/echo", b"x")
    await c.aclose()  # twice is fine
    blocking = missile.Client(f"{url}/msl", keys=keys / "client.json")
    with blocking:
        blocking.request("/echo")
    assert blocking._loop.loop.is_closed()
    blocking.close()
    server = build_server(keys, state=str(tmp_path / "s.db"))
    async with server:
        pass
    assert server._closed


# -- local misconfiguration -------------------------------------------------------------


def test_misconfiguration_fails_locally_naming_the_option(keys: Path, tmp_path: Path) -> None:
    ck, sk = keys / "client.json", keys / "server.json"
    cases: list[tuple[str, object]] = [
        ("keys='nope.json'", lambda: missile.AsyncClient("http://127.0.0.1:1", keys="nope.json")),
        ("keys=.*a server key file", lambda: missile.AsyncClient("http://127.0.0.1:1", keys=sk)),
        ("key_exchange='FOO'", lambda: missile.AsyncClient("http://127.0.0.1:1", keys=ck, key_exchange="FOO")),
        ("base_url=", lambda: missile.AsyncClient("ftp://x", keys=ck)),
        ("state=.*SQLite", lambda: missile.AsyncClient("http://127.0.0.1:1", keys=ck, state="redis://x")),
        ("state=: required", lambda: missile.Server(sk, state=None)),
        ("keys=.*a client key file", lambda: missile.Server(ck, state=":memory:")),
        ("allow_insecure=", lambda: missile.Server(sk, state=":memory:", allow_insecure=["PLAIN"])),
        ("token_renewal=", lambda: missile.Server(sk, state=":memory:", token_renewal=10, token_lifetime=5)),
        ("state=", lambda: missile.Server(sk, state=str(tmp_path / "no" / "dir" / "s.db"))),
    ]
    for pattern, make in cases:
        with pytest.raises(missile.ConfigError, match=pattern):
            make()  # type: ignore[operator]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(missile.ConfigError, match="not a key file"):
        missile.AsyncClient("http://127.0.0.1:1", keys=bad)


@sync
async def test_bad_path_fails_locally(keys: Path, url: str) -> None:
    async with client(keys, url) as c:
        with pytest.raises(missile.ConfigError, match="not a URL"):
            await c.request("http://elsewhere/x", b"")
        with pytest.raises(TypeError, match="unknown option"):
            await c.request("/echo", b"", nonreplayable=True)  # type: ignore[call-arg]


def test_context_from_keyfile_overrides_replace_key_file_values(keys: Path) -> None:
    key_file = missile.KeyFile.load(keys / "server.json")
    built = context_from_keyfile(key_file, user_auth_factories={})
    assert built.ctx.user_auth_factories == {}
    with pytest.raises(TypeError, match="no_such_option"):
        context_from_keyfile(key_file, no_such_option=1)


def test_reply_names_payload_and_keeps_data() -> None:
    assert missile.Reply(b"a").payload == b"a"
    assert missile.Reply(data=b"b").payload == b"b" == missile.Reply(data=b"b").data
    assert "a" not in repr(missile.Reply(b"secret-a"))


def test_server_state_default_paths(keys: Path, tmp_path: Path) -> None:
    server = missile.Server(keys / "server.json", state=tmp_path / "s.db")
    assert server.state_location == str(tmp_path / "s.db")
    asyncio.run(server.aclose())


# -- encoder format -------------------------------------------------------------------------


@sync
async def test_front_doors_talk_binary_unless_an_engine_prefers_json(keys: Path) -> None:
    """missile's default between its own client and server is the binary format, from
    the first response on; a server whose engine prefers JSON answers JSON."""
    for prefer_json in (False, True):
        server = missile.Server(keys / "server.json", state=":memory:")

        @server.route("/")
        async def echo(request: missile.Request) -> bytes:
            return request.payload

        if prefer_json:
            server.engine.capabilities = JSON_PREFERRED
        with serve(server.asgi()) as base:
            async with missile.AsyncClient(base, keys=keys / "client.json") as requester:
                replies = [await requester.request("/", word) for word in (b"one", b"two")]
        assert [r.payload for r in replies] == [b"one", b"two"]
        expected = EncoderFormat.JSON if prefer_json else EncoderFormat.MISSILE_CBOR
        assert [r.header.encoder_format for r in replies] == [expected, expected]

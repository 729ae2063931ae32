# redis-py's execute_command has no annotations.
# mypy: disable-error-code="no-untyped-call"
"""The token state's own Redis connection (:mod:`missile.stores.resp`) against real
redis-servers on loopback: pipelined replies in order, error replies as redis-py's
exceptions, replies split anywhere, a connection lost mid-batch (the batch fails, the
command is not resent, the next batch gets a new connection), a hung server (the batch
waits until its caller gives up or the reply timeout, and the connection is dropped),
AUTH and SELECT from the URL, and malformed or unsolicited replies.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.exceptions as errors

from missile.errors import MslError, MslException
from missile.stores import resp
from missile.stores.redis_state import RedisTokenState
from process_helpers import wait_listening
from redis_helpers import REDIS_SERVER, free_port, stop_redis

#: How long a test lets a batch wait on a hung server before giving up (short: the
#: test only needs the batch to be still waiting when it gives up).
GIVE_UP_S = 0.3
#: Bound on any single wait of these tests that should end by itself.
WAIT_S = 10.0

_T = TypeVar("_T")


def _run(work: Callable[[], Awaitable[_T]]) -> _T:
    async def main() -> _T:
        return await asyncio.wait_for(work(), 60)

    return asyncio.run(main())


def _settings(url: str, **overrides: Any) -> resp.ConnectionSettings:
    options: dict[str, Any] = {"socket_timeout": WAIT_S, "socket_connect_timeout": WAIT_S, **overrides}
    pool = redis.asyncio.ConnectionPool.from_url(url, **options)
    return resp.settings_for(pool)


@asynccontextmanager
async def _connection(url: str, **overrides: Any) -> AsyncIterator[resp.RespConnection]:
    conn = await resp.open_connection(_settings(url, **overrides))
    try:
        yield conn
    finally:
        await conn.aclose()


# -- replies ---------------------------------------------------------------------------


def test_pipelined_replies_come_back_in_order(redis_url: str, redis_prefix: str) -> None:
    key = f"{redis_prefix}n"

    async def work() -> None:
        async with _connection(redis_url) as conn:
            first = conn.send([("SET", key, 5), ("INCRBY", key, 2), ("GET", key), ("GET", f"{key}:none")])
            second = conn.send([("RPUSH", f"{key}:l", "a", b"b", 3), ("LRANGE", f"{key}:l", 0, -1)])
            third = conn.send([("PING",)])
            # Awaited in reverse: each batch still gets its own replies.
            assert await third == [b"PONG"]
            assert await second == [3, [b"a", b"b", b"3"]]
            assert await first == [b"OK", 7, b"7", None]
            assert await conn.send([]) == []

    _run(work)


def test_error_replies_are_redis_py_exceptions_in_place(redis_url: str, redis_prefix: str) -> None:
    key = f"{redis_prefix}s"

    async def work() -> None:
        async with _connection(redis_url) as conn:
            replies = await conn.send(
                [("SADD", key, "x"), ("EVALSHA", "0" * 40, 0), ("INCR", key), ("NOSUCHCOMMAND",), ("SCARD", key)]
            )
            assert replies[0] == 1
            assert isinstance(replies[1], errors.NoScriptError)
            assert isinstance(replies[2], errors.ResponseError)
            assert str(replies[2]).startswith("WRONGTYPE")
            assert type(replies[3]) is errors.ResponseError
            assert "unknown command" in str(replies[3])
            assert replies[4] == 1  # the errors disturbed nothing after them

    _run(work)


@pytest.mark.parametrize(
    ("message", "cls"),
    [
        ("MOVED 3999 127.0.0.1:6381", errors.MovedError),
        ("ASK 3999 127.0.0.1:6381", errors.AskError),
        ("TRYAGAIN Multiple keys request during rehashing of slot", errors.TryAgainError),
        ("CLUSTERDOWN The cluster is down", errors.ClusterDownError),
        ("NOSCRIPT No matching script. Please use EVAL.", errors.NoScriptError),
        ("WRONGPASS invalid username-password pair or user is disabled.", errors.AuthenticationError),
        ("NOAUTH Authentication required.", errors.AuthenticationError),
        ("LOADING Redis is loading the dataset in memory", errors.BusyLoadingError),
        ("ERR something else", errors.ResponseError),
        ("MOVED nonsense", errors.ResponseError),  # not a redirection one could follow
        ("", errors.ResponseError),
    ],
)
def test_error_codes_map_to_redis_py_classes(message: str, cls: type[Exception]) -> None:
    exc = resp.reply_error(message)
    assert type(exc) is cls
    if cls is errors.MovedError:
        assert isinstance(exc, errors.MovedError)
        assert (exc.slot_id, exc.host, exc.port) == (3999, "127.0.0.1", 6381)
    if cls is errors.ResponseError:
        assert str(exc) == message


def test_not_run_replies_are_the_classes_the_state_falls_back_on() -> None:
    """MOVED, ASK, TRYAGAIN and CLUSTERDOWN are the replies after which the state sends a
    command again through the cluster client; the others are results."""
    from missile.stores.redis_state import _NOT_RUN

    for message in ("MOVED 1 h:1", "ASK 1 h:1", "TRYAGAIN x", "CLUSTERDOWN x"):
        assert isinstance(resp.reply_error(message), _NOT_RUN)
    for message in ("NOSCRIPT x", "ERR x", "WRONGTYPE x", "READONLY x"):
        assert not isinstance(resp.reply_error(message), _NOT_RUN)


class _Transport(asyncio.Transport):
    """Records writes; what the server sends is fed to the protocol by the test."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def abort(self) -> None:
        self.aborted = True


def test_replies_split_anywhere_are_reassembled() -> None:
    """Replies arrive in pieces of every size, down to one byte per ``data_received``,
    and batches resolve exactly when their last reply is complete."""
    stream = b"+OK\r\n:42\r\n$5\r\nhello\r\n*3\r\n$1\r\na\r\n$-1\r\n:7\r\n-ERR no\r\n$0\r\n\r\n"
    expected_first = [b"OK", 42, b"hello"]

    async def work(chunk: int) -> None:
        conn = resp.RespConnection()
        transport = _Transport()
        conn.connection_made(transport)
        first = conn.send([("SET", "k", "v"), ("INCR", "n"), ("GET", "k")])
        second = conn.send([("LRANGE", "l", 0, -1), ("X",), ("GET", "e")])
        assert transport.written[0].startswith(b"*3\r\n$3\r\nSET\r\n")
        fed = 0
        first_done_at = stream.index(b"*3")
        while fed < len(stream):
            conn.data_received(stream[fed : fed + chunk])
            fed = min(fed + chunk, len(stream))
            assert first.done() == (fed >= first_done_at)
            assert second.done() == (fed == len(stream))
        assert first.result() == expected_first
        array, error, empty = second.result()
        assert array == [b"a", None, 7]
        assert isinstance(error, errors.ResponseError) and str(error) == "ERR no"
        assert empty == b""
        assert not conn.closed

    for chunk in (1, 2, 3, 7, 64):
        asyncio.run(work(chunk))


def test_a_malformed_or_unsolicited_reply_fails_and_drops_the_connection() -> None:
    """A reply that is not RESP fails the batch waiting for it; a reply nothing asked for
    (past the batch, which keeps its own) cannot be matched to any batch. Either way the
    connection is dropped and refuses new batches."""

    async def work(stream: bytes, commands: int, outcome: list[bytes] | None) -> None:
        conn = resp.RespConnection()
        transport = _Transport()
        conn.connection_made(transport)
        batch = conn.send([("PING",)] * commands) if commands else None
        conn.data_received(stream)
        assert conn.closed and transport.aborted
        if batch is not None and outcome is None:
            with pytest.raises(errors.InvalidResponse):
                await batch
        elif batch is not None:
            assert await batch == outcome
        with pytest.raises(errors.ConnectionError):
            conn.send([("PING",)])

    asyncio.run(work(b"?what\r\n", 1, None))  # not RESP
    asyncio.run(work(b"+PONG\r\n+PONG\r\n", 1, [b"PONG"]))  # a reply more than was asked for
    asyncio.run(work(b"+PONG\r\n", 0, None))  # a reply to nothing


# -- failures --------------------------------------------------------------------------


async def _client_id(conn: resp.RespConnection) -> int:
    (client_id,) = await conn.send([("CLIENT", "ID")])
    assert isinstance(client_id, int)
    return client_id


async def _wait_blocked(admin: redis.asyncio.Redis, client_id: int) -> None:
    """Until the server reports client ``client_id`` blocked in a command."""
    for _ in range(int(WAIT_S / 0.01)):
        listing = await admin.execute_command("CLIENT", "LIST", "ID", client_id)
        text = listing.decode() if isinstance(listing, bytes) else str(listing)
        if "cmd=blpop" in text:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the command never blocked")


def test_a_connection_killed_mid_batch_fails_the_batch_without_resending(redis_url: str, redis_prefix: str) -> None:
    """The state's batch is written, partly run (the INCR), then its connection is killed
    while the BLPOP blocks: the batch fails as unavailable, nothing is sent again, and
    the next batch runs on a new connection."""
    counter, empty = f"{redis_prefix}counter", f"{redis_prefix}empty"

    async def work() -> None:
        state = RedisTokenState(redis_url, prefix=redis_prefix)
        admin = redis.asyncio.Redis.from_url(redis_url)
        try:
            pipelines = state._pipelines
            ((first_id,),) = await pipelines.run_batch([(("CLIENT", "ID"),)])
            blocked = asyncio.ensure_future(state._call(("INCR", counter), ("BLPOP", empty, 0)))
            await _wait_blocked(admin, first_id)
            await admin.execute_command("CLIENT", "KILL", "ID", first_id)
            with pytest.raises(MslException) as caught:
                await asyncio.wait_for(blocked, WAIT_S)
            assert caught.value.error == MslError.INTERNAL_EXCEPTION
            assert isinstance(caught.value.__cause__, errors.ConnectionError)
            ((second_id,), (count,)) = await pipelines.run_batch([(("CLIENT", "ID"),), (("GET", counter),)])
            assert second_id != first_id
            assert count == b"1"  # the INCR ran once and was not sent again
        finally:
            await state.aclose()
            await admin.aclose()

    _run(work)


def test_a_server_killed_mid_batch_fails_the_batch_at_once(
    private_redis: tuple[subprocess.Popen[bytes], str], redis_prefix: str
) -> None:
    proc, url = private_redis
    empty = f"{redis_prefix}empty"

    async def work() -> None:
        async with _connection(url) as conn:
            client_id = await _client_id(conn)
            batch = conn.send([("PING",), ("BLPOP", empty, 0)])
            admin = redis.asyncio.Redis.from_url(url)
            try:
                await _wait_blocked(admin, client_id)
            finally:
                await admin.aclose()
            proc.kill()
            with pytest.raises(errors.ConnectionError):
                await asyncio.wait_for(batch, WAIT_S)  # long before the reply timeout
            assert conn.closed
            with pytest.raises(errors.ConnectionError):
                conn.send([("PING",)])
        # The kernel closes a killed process's sockets one by one: until it has exited,
        # its listening socket may still complete a connection.
        await asyncio.to_thread(proc.wait, WAIT_S)
        with pytest.raises(errors.ConnectionError):
            await resp.open_connection(_settings(url))

    _run(work)


def test_a_hung_server_keeps_the_batch_waiting_until_the_caller_gives_up(
    private_redis: tuple[subprocess.Popen[bytes], str], redis_prefix: str
) -> None:
    """SIGSTOP: the batch waits (no reply, no error) until its caller cancels it; the
    cancelled batch drops its connection, and after SIGCONT the next batch runs on a
    new one and sees that the command ran exactly once."""
    proc, url = private_redis
    counter = f"{redis_prefix}counter"

    async def work() -> None:
        state = RedisTokenState(url, prefix=redis_prefix)
        try:
            pipelines = state._pipelines
            await pipelines.run_batch([(("PING",),)])
            conn = pipelines._connections[""]
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(pipelines.run_batch([(("INCR", counter),)]), GIVE_UP_S)
                assert conn.closed
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            ((count,),) = await pipelines.run_batch([(("GET", counter),)])
            assert pipelines._connections[""] is not conn
            # The INCR reached the server before the stop and ran once it resumed, or
            # not at all; it was never sent again.
            assert count in (None, b"1")
        finally:
            await state.aclose()

    _run(work)


def test_a_hung_server_fails_the_batch_after_the_reply_timeout(
    private_redis: tuple[subprocess.Popen[bytes], str],
) -> None:
    """Without a caller's bound, the client's ``socket_timeout`` fails a batch left
    unanswered, and drops the connection."""
    proc, url = private_redis

    async def work() -> None:
        conn = await resp.open_connection(_settings(url, socket_timeout=GIVE_UP_S))
        try:
            assert await conn.send([("PING",)]) == [b"PONG"]
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                with pytest.raises(errors.TimeoutError):
                    await asyncio.wait_for(conn.send([("PING",)]), WAIT_S)
                assert conn.closed
            finally:
                os.kill(proc.pid, signal.SIGCONT)
        finally:
            await conn.aclose()

    _run(work)


def test_connect_failures_are_redis_py_connection_errors() -> None:
    """Nothing listening: ConnectionError. A server that accepts and never answers the
    handshake: TimeoutError within the connect timeout."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads, never answers
        writer.close()

    async def work() -> None:
        with pytest.raises(errors.ConnectionError):
            await resp.open_connection(resp.ConnectionSettings(host="127.0.0.1", port=free_port()))
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            settings = resp.ConnectionSettings(host="127.0.0.1", port=port, password="pw", connect_timeout=GIVE_UP_S)
            with pytest.raises(errors.TimeoutError):
                await resp.open_connection(settings)
        finally:
            server.close()
            await server.wait_closed()

    _run(work)


# -- set-up from the URL ---------------------------------------------------------------


def test_auth_and_select_come_from_the_url(private_redis: tuple[subprocess.Popen[bytes], str]) -> None:
    """A password (and a user) and a database in the URL: the state's connections
    authenticate and select it, the data lands in that database, and a wrong password
    fails as unavailable without the password in any message."""
    _, url = private_redis
    port = url.rsplit(":", 1)[1].split("/")[0]
    admin = redis.Redis.from_url(url)
    try:
        admin.config_set("requirepass", "s3cret-pw")
        admin.execute_command("AUTH", "s3cret-pw")
        admin.execute_command("ACL", "SETUSER", "alice", "on", ">alice-pw", "~*", "+@all")

        async def work(state_url: str, prefix: str) -> None:
            state = RedisTokenState(state_url, prefix=prefix)
            try:
                await state.revoke_user("mallory")
                assert await state.user_id_token_revoked("mallory", 1)
            finally:
                await state.aclose()

        _run(lambda: work(f"redis://:s3cret-pw@127.0.0.1:{port}/3", "p1:"))
        _run(lambda: work(f"redis://alice:alice-pw@127.0.0.1:{port}/5", "p2:"))
        assert admin.execute_command("SELECT", 3) and admin.sismember("p1:{revoked}:users", "mallory")
        assert admin.execute_command("SELECT", 5) and admin.sismember("p2:{revoked}:users", "mallory")
        assert admin.execute_command("SELECT", 0) and not admin.exists("p1:{revoked}:users", "p2:{revoked}:users")

        async def wrong() -> None:
            state = RedisTokenState(f"redis://alice:not-the-pw@127.0.0.1:{port}/0", prefix="p3:")
            try:
                with pytest.raises(MslException) as caught:
                    await state._call(("PING",))
            finally:
                await state.aclose()
            cause = caught.value.__cause__
            assert isinstance(cause, errors.AuthenticationError)
            assert "not-the-pw" not in f"{caught.value} {cause!s} {cause!r}"

        _run(wrong)
    finally:
        admin.close()


def test_settings_follow_redis_py_connection_options(tmp_path: Path) -> None:
    tcp = _settings("redis://bob:pw@10.0.0.1:6380/2", client_name="me")
    assert (tcp.host, tcp.port, tcp.path, tcp.db) == ("10.0.0.1", 6380, None, 2)
    assert (tcp.username, tcp.password) == ("bob", "pw")
    assert (tcp.client_name, tcp.connect_timeout, tcp.reply_timeout, tcp.tls) == ("me", WAIT_S, WAIT_S, None)
    assert "pw" not in repr(tcp)
    unix = _settings(f"unix://{tmp_path}/redis.sock?db=4")
    assert (unix.path, unix.db) == (f"{tmp_path}/redis.sock", 4)
    tls = _settings("rediss://h:6390/0", ssl_cert_reqs="none")
    assert tls.tls is not None and not tls.tls.check_hostname
    verified = _settings("rediss://h:6390/0")
    assert verified.tls is not None and verified.tls.check_hostname
    node = redis.asyncio.cluster.ClusterNode("127.0.0.1", 7000, socket_timeout=1.5)
    assert (resp.settings_for(node).port, resp.settings_for(node).reply_timeout) == (7000, 1.5)


def test_aclose_closes_the_connections(redis_url: str, redis_prefix: str) -> None:
    async def work() -> None:
        state = RedisTokenState(redis_url, prefix=redis_prefix)
        await state.revoke_user("x")
        conn = state._pipelines._connections[""]
        assert not conn.closed
        await state.aclose()
        assert conn.closed and conn._transport is None

    _run(work)


# -- TLS -------------------------------------------------------------------------------

#: Attempts to start the TLS redis-server (a port chosen free may be taken meanwhile).
TLS_START_ATTEMPTS = 3


def _write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 that it signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def _start_tls_redis(directory: Path, cert: Path, key: Path, ca: Path) -> tuple[subprocess.Popen[bytes], int]:
    for _ in range(TLS_START_ATTEMPTS):
        port = free_port()
        proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
             "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_listening(proc, port, lambda: "redis-server exited", timeout=WAIT_S)
        except RuntimeError:
            stop_redis(proc)
            continue
        return proc, port
    pytest.skip("could not start a TLS redis-server (no TLS support in this build?)")


def test_rediss_urls_connect_over_tls_and_verify_the_server(tmp_path: Path) -> None:
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server not installed")
    ca, cert, key = _write_certificates(tmp_path)
    proc, port = _start_tls_redis(tmp_path, cert, key, ca)
    url = f"rediss://127.0.0.1:{port}/0"

    async def work(ssl_ca_certs: str | None) -> None:
        client = redis.asyncio.Redis.from_url(url, ssl_ca_certs=ssl_ca_certs, socket_timeout=WAIT_S)
        state = RedisTokenState(client=client, prefix="tls:")
        try:
            await state.revoke_user("eve")
            assert await state.user_id_token_revoked("eve", 1)
            conn = state._pipelines._connections[""]
            assert conn._transport is not None and conn._transport.get_extra_info("ssl_object") is not None
        finally:
            await state.aclose()
            await client.aclose()

    try:
        _run(lambda: work(str(ca)))
        with pytest.raises(MslException) as caught:
            _run(lambda: work(None))  # the server's certificate is not one the default CAs signed
        assert caught.value.error == MslError.INTERNAL_EXCEPTION
    finally:
        stop_redis(proc)

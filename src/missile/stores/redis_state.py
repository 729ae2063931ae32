"""Server token state in Redis or Redis Cluster, shared by a fleet of servers
(control.md §2.2, §7).

:class:`RedisTokenState` keeps the issuer's state where every server of one trusted
services network sees it: the same revocations, sequence numbers and replay windows. It
talks to Redis through ``redis.asyncio``, so a slow or hung Redis delays only the
requests that wait for it (each call is bounded by the token factory) while the event
loop goes on accepting and answering other connections.

Key layout (``P`` is the prefix, ``H`` the identity's UTF-8 bytes in hex):

* ``P{H}`` — one hash per identity: ``newest`` (serial of its newest master token),
  ``seq:<serial>`` (newest sequence number issued), ``nr:<serial>`` (largest accepted
  non-replayable ID);
* ``P{revoked}:identities|serials|users|uits`` — the revocation sets.

The braces are Redis Cluster hash tags: everything an atomic script touches is one
identity's hash, so it lives in one slot, and identities spread over the cluster. The
identity is hex-encoded so that no identity can contain a brace or collide with another.

Atomicity: each change is one Lua script on one identity's hash: a message's check
(read the token's state and, for a non-replayable ID, apply the acceptance rule of
:func:`~missile.tokens.state.check_non_replayable_id` and record the ID), a new master
token's newest-serial switch, and a renewal's sequence compare-and-set. So no ID is
accepted twice and one renewal wins, across any number of servers. Creating a new master
token also discards the replay window of the identity's previous serial number, whose
tokens are refused from then on (control.md §7 allows it).

Cost: a message costs one round trip (the check script and the two revocation reads in
one pipeline), and operations that arrive while a pipeline is in flight share the next
one (:mod:`missile.stores.batching`), so redis-py's per-call cost is paid per batch.

Durability is Redis's: without RDB snapshots or the append-only file, a Redis restart
forgets the replay windows and a captured non-replayable message is accepted once more.
``missile serve`` warns at start-up when persistence is off.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

try:  # the ``redis`` extra; redacted_url (used by ``missile serve``) works without it
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
except ImportError:  # pragma: no cover - exercised by tests/test_packaging.py in a subprocess
    _REDIS_INSTALLED = False
else:
    _REDIS_INSTALLED = True

from missile.encoding import MAX_LONG_VALUE
from missile.errors import MslError, MslException
from missile.stores.batching import Batcher
from missile.tokens.state import NON_REPLAYABLE_CATCHUP, NON_REPLAYABLE_WINDOW, MasterTokenState, TokenState

__all__ = ["RedisTokenState", "redacted_url"]

#: Connections to Redis per process. Requests beyond it wait for a free connection
#: (bounded by the token factory's time bound) instead of opening sockets without end
#: while Redis is slow.
MAX_CONNECTIONS = 64

#: The message of the ImportError raised when the ``redis`` package is not installed.
MISSING_REDIS = "Redis token state needs the redis package: pip install 'missile[redis]'"

# KEYS[1] identity hash; ARGV: serial, candidate non-replayable ID ('' = none), the
# window constants, and 'any' to check the ID even under a superseded serial. Returns
# {newest, sequence, verdict}: the verdict is '' (no ID, or a superseded serial), 'ok'
# (accepted and recorded), 'replayed' or 'unrecoverable'. The
# rule is check_non_replayable_id's, in Lua so that a message costs one round trip; Lua
# numbers are doubles, exact for these IDs (< 2^53). tests/stores prove the two agree.
_CHECK_SCRIPT = """
local serial = ARGV[1]
local r = redis.call('HMGET', KEYS[1], 'newest', 'seq:' .. serial, 'nr:' .. serial)
local verdict = ''
if ARGV[2] ~= '' and (ARGV[6] == 'any' or not r[1] or r[1] == serial) then
  local largest = tonumber(r[3] or '0')
  local c = tonumber(ARGV[2])
  local window, catchup, maxlong = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  if largest - catchup < c and c <= largest then
    verdict = 'replayed'
  elseif c - window > largest then
    verdict = 'unrecoverable'
  elseif c < largest and c >= largest - maxlong + window then
    verdict = 'unrecoverable'
  else
    verdict = 'ok'
    redis.call('HSET', KEYS[1], 'nr:' .. serial, ARGV[2])
  end
end
return {r[1], r[2], verdict}
"""

_VERDICTS = {
    "": None,
    "ok": None,
    "replayed": MslError.MESSAGE_REPLAYED,
    "unrecoverable": MslError.MESSAGE_REPLAYED_UNRECOVERABLE,
}

# KEYS[1] identity hash; ARGV: serial, old sequence, new sequence. Unknown serials renew.
_RENEW_SCRIPT = """
local field = 'seq:' .. ARGV[1]
local current = redis.call('HGET', KEYS[1], field)
if current and current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], field, ARGV[3])
return 1
"""

# KEYS[1] identity hash; ARGV: serial of the new master token.
_NEW_MASTER_TOKEN_SCRIPT = """
local previous = redis.call('HGET', KEYS[1], 'newest')
if previous then
  redis.call('HDEL', KEYS[1], 'seq:' .. previous, 'nr:' .. previous)
end
redis.call('HSET', KEYS[1], 'seq:' .. ARGV[1], '0', 'newest', ARGV[1])
return 1
"""


def redacted_url(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int | None:
    if value is None:
        return None
    return int(value)


@asynccontextmanager
async def _guard() -> AsyncIterator[None]:
    try:
        yield
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        # The cause keeps the details; the message says nothing about the server.
        raise MslException(MslError.INTERNAL_EXCEPTION, "token state store unavailable", cause=exc) from exc


class RedisTokenState(TokenState):
    """Issuer state in Redis (``cluster=False``) or a Redis Cluster (``cluster=True``,
    ``url`` naming any node), shared by every server that uses the same prefix.

    ``client`` may be given instead of a URL (an existing ``redis.asyncio.Redis`` or
    ``redis.asyncio.cluster.RedisCluster``); it is then not closed by :meth:`aclose`.
    """

    shared = True
    durable = True

    def __init__(
        self,
        url: str | None = None,
        *,
        cluster: bool = False,
        client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster | None = None,
        prefix: str = "missile:",
        socket_timeout: float = 5.0,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        if not _REDIS_INSTALLED:
            raise ImportError(MISSING_REDIS)
        if "{" in prefix or "}" in prefix:
            raise ValueError("the prefix must not contain braces (they are the keys' hash tags)")
        if (url is None) == (client is None):
            raise ValueError("give exactly one of url and client")
        self._url = redacted_url(url) if url is not None else None
        self._owned = client is None
        self.cluster = cluster or isinstance(client, redis.asyncio.cluster.RedisCluster)
        if client is not None:
            self._redis: Any = client
        elif cluster:
            assert url is not None
            self._redis = redis.asyncio.cluster.RedisCluster.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                max_connections=max_connections,
            )
        else:
            assert url is not None
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=None,  # the token factory bounds the wait
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
            )
            self._redis = redis.asyncio.Redis.from_pool(pool)  # owns the pool: aclose() closes it
        self.prefix = prefix
        self._revoked_identities = f"{prefix}{{revoked}}:identities"
        self._revoked_serials = f"{prefix}{{revoked}}:serials"
        self._revoked_users = f"{prefix}{{revoked}}:users"
        self._revoked_uits = f"{prefix}{{revoked}}:uits"
        self._pipelines = _Pipelines(self)

    @property
    def client(self) -> Any:
        """The ``redis.asyncio`` client."""
        return self._redis

    def describe(self) -> str:
        kind = "redis cluster" if self.cluster else "redis"
        return f"{kind} {self._url}" if self._url is not None else kind

    async def aclose(self) -> None:
        if self._owned:
            await self._redis.aclose()

    def _identity_key(self, identity: str) -> str:
        return f"{self.prefix}{{{identity.encode('utf-8').hex()}}}"

    def pipeline(self) -> Any:
        """A pipeline without MULTI: its commands touch several slots, and each is
        atomic on its own, which is all the state needs."""
        return self._redis.pipeline() if self.cluster else self._redis.pipeline(transaction=False)

    async def load_scripts(self) -> None:
        """Load the Lua scripts (on every primary of a cluster), after a NOSCRIPT."""
        if self.cluster:
            for node in self._redis.get_primaries():
                for source in _SCRIPTS.values():
                    await self._redis.execute_command("SCRIPT", "LOAD", source, target_nodes=node)
        else:
            for source in _SCRIPTS.values():
                await self._redis.execute_command("SCRIPT", "LOAD", source)

    async def _call(self, *commands: _Command) -> list[Any]:
        async with _guard():
            results: list[Any] = await self._pipelines.submit(commands)
        return results

    def _check(self, identity: str, serial_number: int, candidate: int | None, mode: str = "") -> _Command:
        return (
            "EVALSHA",
            _SHA["check"],
            1,
            self._identity_key(identity),
            str(serial_number),
            "" if candidate is None else str(candidate),
            NON_REPLAYABLE_WINDOW,
            NON_REPLAYABLE_CATCHUP,
            MAX_LONG_VALUE,
            mode,
        )

    # -- the interface ----------------------------------------------------------------

    async def master_token_state(self, identity: str, serial_number: int) -> MasterTokenState:
        state, _ = await self.check_master_token(identity, serial_number)
        return state

    async def check_master_token(
        self, identity: str, serial_number: int, non_replayable_id: int | None = None
    ) -> tuple[MasterTokenState, MslError | None]:
        (newest, sequence, verdict), identity_revoked, serial_revoked = await self._call(
            self._check(identity, serial_number, non_replayable_id),
            ("SISMEMBER", self._revoked_identities, identity),
            ("SISMEMBER", self._revoked_serials, str(serial_number)),
        )
        state = MasterTokenState(
            identity_revoked=bool(identity_revoked),
            serial_revoked=bool(serial_revoked),
            newest_serial=_int(newest),
            sequence=_int(sequence),
        )
        return state, _VERDICTS[_text(verdict)]

    async def accept_non_replayable_id(self, identity: str, serial_number: int, candidate: int) -> MslError | None:
        ((_, _, verdict),) = await self._call(self._check(identity, serial_number, candidate, "any"))
        return _VERDICTS[_text(verdict)]

    async def record_new_master_token(self, identity: str, serial_number: int) -> None:
        await self._call(("EVALSHA", _SHA["new"], 1, self._identity_key(identity), str(serial_number)))

    async def record_renewal(self, identity: str, serial_number: int, old_sequence: int, new_sequence: int) -> bool:
        key = self._identity_key(identity)
        (renewed,) = await self._call(
            ("EVALSHA", _SHA["renew"], 1, key, str(serial_number), str(old_sequence), str(new_sequence))
        )
        return bool(renewed)

    async def user_id_token_revoked(self, user: str | None, serial_number: int) -> bool:
        user_revoked, serial_revoked = await self._call(
            ("SISMEMBER", self._revoked_users, user if user is not None else ""),
            ("SISMEMBER", self._revoked_uits, str(serial_number)),
        )
        return (user is not None and bool(user_revoked)) or bool(serial_revoked)

    async def revoke_identity(self, identity: str) -> None:
        await self._call(("SADD", self._revoked_identities, identity))

    async def revoke_master_token(self, serial_number: int) -> None:
        await self._call(("SADD", self._revoked_serials, str(serial_number)))

    async def revoke_user(self, user: str) -> None:
        await self._call(("SADD", self._revoked_users, user))

    async def revoke_user_id_token(self, serial_number: int) -> None:
        await self._call(("SADD", self._revoked_uits, str(serial_number)))

    async def forget_master_token(self, identity: str, serial_number: int) -> None:
        await self._call(("HDEL", self._identity_key(identity), f"seq:{serial_number}"))


_Command = tuple[Any, ...]

_SCRIPTS = {"check": _CHECK_SCRIPT, "renew": _RENEW_SCRIPT, "new": _NEW_MASTER_TOKEN_SCRIPT}
_SHA = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in _SCRIPTS.items()}


class _Pipelines(Batcher[tuple[_Command, ...], Any]):
    """Sends each batch of operations (each a few commands) as one pipeline: one round
    trip, and redis-py's per-call cost paid once per batch instead of per command."""

    def __init__(self, state: RedisTokenState) -> None:
        super().__init__()
        self._state = state

    async def run_batch(self, ops: Sequence[tuple[_Command, ...]]) -> Sequence[Any]:
        commands = [command for op in ops for command in op]
        results = await self._execute(commands)
        missing = [i for i, result in enumerate(results) if isinstance(result, redis.exceptions.NoScriptError)]
        if missing:
            # A restarted or flushed Redis forgot the scripts: NOSCRIPT means the command
            # did not run, so sending exactly those again is safe.
            await self._state.load_scripts()
            for i, result in zip(missing, await self._execute([commands[i] for i in missing]), strict=True):
                results[i] = result
        out: list[Any] = []
        start = 0
        for op in ops:
            part = results[start : start + len(op)]
            start += len(op)
            failure = next((r for r in part if isinstance(r, Exception)), None)
            out.append(failure if failure is not None else part)
        return out

    async def _execute(self, commands: Sequence[_Command]) -> list[Any]:
        pipe = self._state.pipeline()
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))

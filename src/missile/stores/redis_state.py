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

Atomicity: a new master token's newest-serial switch and a renewal's sequence bump are
Lua scripts on the identity's hash; accepting a non-replayable ID reads the largest ID,
applies :func:`~missile.tokens.state.check_non_replayable_id` and stores the new ID with
a Lua compare-and-set, retrying when another server won the race, so no ID is accepted
twice and the acceptance rule lives in one place. Creating a new master token also
discards the replay window of the identity's previous serial number, whose tokens are
refused from then on (control.md §7 allows it).

Durability is Redis's: without RDB snapshots or the append-only file, a Redis restart
forgets the replay windows and a captured non-replayable message is accepted once more.
``missile serve`` warns at start-up when persistence is off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.cluster

from missile.errors import MslError, MslException
from missile.tokens.state import MasterTokenState, TokenState, check_non_replayable_id

__all__ = ["RedisTokenState", "redacted_url"]

#: Compare-and-set attempts of one non-replayable ID before giving up (TRANSIENT_FAILURE):
#: each failed attempt means another server accepted an ID of the same master token.
MAX_CAS_ATTEMPTS = 100

#: Connections to Redis per process. Requests beyond it wait for a free connection
#: (bounded by the token factory's time bound) instead of opening sockets without end
#: while Redis is slow.
MAX_CONNECTIONS = 64

# KEYS[1] identity hash; ARGV: field, expected value ('' = absent), new value.
_CAS_SCRIPT = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == false then current = '' end
if current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

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
        # register_script only computes the SHA; EVALSHA falls back to EVAL once per server.
        self._cas = self._redis.register_script(_CAS_SCRIPT)
        self._renew = self._redis.register_script(_RENEW_SCRIPT)
        self._new_master_token = self._redis.register_script(_NEW_MASTER_TOKEN_SCRIPT)

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

    def _pipeline(self) -> Any:
        # Several keys in several slots: never a MULTI transaction (each command is
        # atomic on its own, which is all these reads need).
        return self._redis.pipeline() if self.cluster else self._redis.pipeline(transaction=False)

    # -- the interface ----------------------------------------------------------------

    async def master_token_state(self, identity: str, serial_number: int) -> MasterTokenState:
        async with _guard():
            pipe = self._pipeline()
            pipe.hmget(self._identity_key(identity), ["newest", f"seq:{serial_number}"])
            pipe.sismember(self._revoked_identities, identity)
            pipe.sismember(self._revoked_serials, str(serial_number))
            (newest, sequence), identity_revoked, serial_revoked = await pipe.execute()
        return MasterTokenState(
            identity_revoked=bool(identity_revoked),
            serial_revoked=bool(serial_revoked),
            newest_serial=_int(newest),
            sequence=_int(sequence),
        )

    async def accept_non_replayable_id(self, identity: str, serial_number: int, candidate: int) -> MslError | None:
        key, field = self._identity_key(identity), f"nr:{serial_number}"
        async with _guard():
            for _ in range(MAX_CAS_ATTEMPTS):
                stored = await self._redis.hget(key, field)
                largest = _int(stored)
                error = check_non_replayable_id(largest or 0, candidate)
                if error is not None:
                    return error
                expected = "" if largest is None else str(largest)
                if await self._cas(keys=[key], args=[field, expected, str(candidate)]):
                    return None
        raise MslException(MslError.INTERNAL_EXCEPTION, "non-replayable ID update contended")

    async def record_new_master_token(self, identity: str, serial_number: int) -> None:
        async with _guard():
            await self._new_master_token(keys=[self._identity_key(identity)], args=[str(serial_number)])

    async def record_renewal(self, identity: str, serial_number: int, old_sequence: int, new_sequence: int) -> bool:
        async with _guard():
            renewed = await self._renew(
                keys=[self._identity_key(identity)], args=[str(serial_number), str(old_sequence), str(new_sequence)]
            )
        return bool(renewed)

    async def user_id_token_revoked(self, user: str | None, serial_number: int) -> bool:
        async with _guard():
            pipe = self._pipeline()
            pipe.sismember(self._revoked_users, user if user is not None else "")
            pipe.sismember(self._revoked_uits, str(serial_number))
            user_revoked, serial_revoked = await pipe.execute()
        return (user is not None and bool(user_revoked)) or bool(serial_revoked)

    async def _revoke(self, key: str, value: str) -> None:
        async with _guard():
            await self._redis.sadd(key, value)

    async def revoke_identity(self, identity: str) -> None:
        await self._revoke(self._revoked_identities, identity)

    async def revoke_master_token(self, serial_number: int) -> None:
        await self._revoke(self._revoked_serials, str(serial_number))

    async def revoke_user(self, user: str) -> None:
        await self._revoke(self._revoked_users, user)

    async def revoke_user_id_token(self, serial_number: int) -> None:
        await self._revoke(self._revoked_uits, str(serial_number))

    async def forget_master_token(self, identity: str, serial_number: int) -> None:
        async with _guard():
            await self._redis.hdel(self._identity_key(identity), f"seq:{serial_number}")

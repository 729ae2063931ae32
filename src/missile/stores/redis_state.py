"""Server token state in Redis or Redis Cluster, shared by a fleet of servers
(control.md §2.2, §7).

:class:`RedisTokenState` keeps the issuer's state where every server of one trusted
services network sees it: the same revocations, sequence numbers and replay windows. It
talks to Redis through ``redis.asyncio``, so a slow or hung Redis delays only the
requests that wait for it (each call is bounded by the token factory) while the event
loop goes on accepting and answering other connections.

Key layout (``P`` is the prefix, ``H`` the identity's UTF-8 bytes in hex, ``S`` a
master token serial number in decimal):

* ``P{H}`` — one hash per identity: ``newest`` (serial of its newest master token),
  ``seq:S`` (newest sequence number issued), ``nr:S`` (largest accepted non-replayable
  ID), ``revoked`` (the identity is revoked) and ``revoked:S`` (serial ``S``, the
  identity's newest, is revoked);
* ``P{mt:S}`` — the set of identities whose newest master token has serial ``S``: how a
  revocation by serial number alone finds the identity hash to flag;
* ``P{revoked}:serials|users|uits`` — every revoked master token serial, and the user
  and user ID token revocations.

The braces are Redis Cluster hash tags: a message's check reads one identity's hash
only, so it touches one slot on one node, and identities spread over the cluster. The
identity is hex-encoded so that no identity can contain a brace or collide with another
(``mt:`` and ``revoked`` are not hex, so those tags never collide with an identity's).

Why revocations of master tokens live in the identity's hash: a check that also read a
shared revocation set would touch two slots, in a cluster two nodes, and cost two round
trips' worth of client work per message. A revocation is rare and may cost more: revoking
a serial number records it in ``P{revoked}:serials`` and flags it in the hash of each
identity whose newest token has it (found through ``P{mt:S}``). A token whose identity
hash has no ``newest`` (state lost, or a token issued before this state existed) is
checked against ``P{revoked}:serials`` too, in a second round trip: such tokens are rare.
A token under any serial but the newest is refused as superseded whatever its flags.

Atomicity: each change is one Lua script on one identity's hash: a message's check
(read the token's state and, for a non-replayable ID, apply the acceptance rule of
:func:`~missile.tokens.state.check_non_replayable_id` and record the ID), a new master
token's newest-serial switch, a renewal's sequence compare-and-set and a serial's
revocation flag. So no ID is accepted twice and one renewal wins, across any number of
servers. Creating a new master token also discards the replay window of the identity's
previous serial number, whose tokens are refused from then on (control.md §7 allows it).

Cost: a message costs one round trip to one node, and operations that arrive while a
trip is in flight share the next one (:mod:`missile.stores.batching`), so the per-trip
cost is paid once per batch. redis-py's per-trip cost was most of a check's (about 100
us of Python per pipeline, and 35-55 us per command of cluster routing): a batch is
written and read on connections of its own (:mod:`missile.stores.resp`: hiredis packs
and parses, replies are matched to the batch in the socket's callback), and in a
cluster each command goes straight to the node that the client's slot map gives its
key; a command that a stale map sent to the wrong node is answered MOVED or ASK without
running, and goes again through the cluster client, which follows the redirection and
corrects its map (see :class:`_Pipelines`). redis-py's client does the rest: loading the
scripts, the cluster's slot map and fallback, and the calls outside the batches.

Durability is Redis's: without RDB snapshots or the append-only file, a Redis restart
forgets the replay windows and a captured non-replayable message is accepted once more.
``missile serve`` warns at start-up when persistence is off.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

try:  # the ``redis`` extra; redacted_url (used by ``missile serve``) works without it
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.crc

    from missile.stores import resp
except ImportError:  # pragma: no cover - exercised by tests/test_packaging.py in a subprocess
    _REDIS_INSTALLED = False
else:
    _REDIS_INSTALLED = True

from missile.deadlines import check_seconds
from missile.encoding import MAX_LONG_VALUE
from missile.errors import MslError, MslException
from missile.stores.batching import Batcher
from missile.tokens.state import NON_REPLAYABLE_CATCHUP, NON_REPLAYABLE_WINDOW, MasterTokenState, TokenState

__all__ = ["RedisTokenState", "redacted_url"]

#: Connections to Redis per process (the client's pool; the batches use one more per
#: Redis server, in a cluster per node, and event loop). Requests beyond it wait for a
#: free connection (bounded by the token factory's time bound) instead of opening
#: sockets without end while Redis is slow.
MAX_CONNECTIONS = 64

#: Keys whose cluster slot a state remembers (its hash tag's CRC is computed once per
#: identity): enough for the identities a server sees at once; past it the map is
#: emptied and refills with the active ones, so memory stays bounded.
SLOT_CACHE = 4096

#: Seconds a Redis Cluster's batch waits for one node's replies before it goes on
#: without them (:class:`_Pipelines`): far above a healthy node's reply time under load
#: (well under a millisecond on loopback, a few on a network), far below the token
#: factory's bound (1 s). So a node that hangs holds the other nodes' checks back for
#: this long once, not for as long as it hangs.
NODE_STALL_S = 0.05

#: The message of the ImportError raised when the ``redis`` package is not installed.
MISSING_REDIS = "Redis token state needs the redis package: pip install 'missile[redis]'"

# KEYS[1] identity hash; ARGV: serial, candidate non-replayable ID ('' = none), the
# window constants, and 'any' to check the ID even under a superseded serial. Returns
# {newest, sequence, verdict, identity revoked, serial revoked}: the verdict is '' (no
# ID, or a superseded serial), 'ok' (accepted and recorded), 'replayed' or
# 'unrecoverable'. The rule is check_non_replayable_id's, in Lua so that a message costs
# one round trip; Lua numbers are doubles, exact for these IDs (< 2^53). tests/stores
# prove the two agree. A missing field is false in Lua and None in the reply.
_CHECK_SCRIPT = """
local serial = ARGV[1]
local r = redis.call('HMGET', KEYS[1], 'newest', 'seq:' .. serial, 'nr:' .. serial, 'revoked', 'revoked:' .. serial)
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
return {r[1], r[2], verdict, r[4], r[5]}
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

# KEYS[1] identity hash; ARGV: serial of the new master token. Returns the previous
# newest serial (false: none), whose index entry the caller then removes. A previous
# serial's revocation flag goes with it (its tokens are refused as superseded), unless
# the same serial is recorded again.
_NEW_MASTER_TOKEN_SCRIPT = """
local previous = redis.call('HGET', KEYS[1], 'newest')
if previous then
  redis.call('HDEL', KEYS[1], 'seq:' .. previous, 'nr:' .. previous)
  if previous ~= ARGV[1] then redis.call('HDEL', KEYS[1], 'revoked:' .. previous) end
end
redis.call('HSET', KEYS[1], 'seq:' .. ARGV[1], '0', 'newest', ARGV[1])
return previous
"""

# KEYS[1] identity hash; ARGV: a revoked serial. Flags it when it is the identity's
# newest; any other serial is refused as superseded already, and a hash without a newest
# serial makes the check read the shared set of revoked serials.
_REVOKE_SERIAL_SCRIPT = """
if redis.call('HGET', KEYS[1], 'newest') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'revoked:' .. ARGV[1], '1')
end
return 1
"""


def redacted_url(url: str) -> str:
    """``url`` without its password, for logs (a URL too malformed to find the
    password in is not shown at all)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:  # e.g. an unclosed IPv6 bracket, a port that is not a number
        return "<malformed URL>"
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int | None:
    if value is None:
        return None
    return int(value)


def _unavailable(exc: Exception) -> MslException:
    # The cause keeps the details; the message says nothing about the server.
    return MslException(MslError.INTERNAL_EXCEPTION, "token state store unavailable", cause=exc)


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
        check_seconds(socket_timeout, "socket_timeout")
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
        await self._pipelines.aclose()
        if self._owned:
            await self._redis.aclose()

    def _identity_key(self, identity: str) -> str:
        return f"{self.prefix}{{{identity.encode('utf-8').hex()}}}"

    def _serial_key(self, serial_number: int) -> str:
        return f"{self.prefix}{{mt:{serial_number}}}"

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
        try:
            results: list[Any] = await self._pipelines.submit(commands)
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
            raise _unavailable(exc) from exc
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
        ((newest, sequence, verdict, identity_revoked, serial_revoked),) = await self._call(
            self._check(identity, serial_number, non_replayable_id)
        )
        if newest is None and not serial_revoked:
            # No record of the identity's newest token (see the module documentation):
            # only the shared set can say whether this serial was revoked.
            (serial_revoked,) = await self._call(("SISMEMBER", self._revoked_serials, str(serial_number)))
        state = MasterTokenState(
            identity_revoked=bool(identity_revoked),
            serial_revoked=bool(serial_revoked),
            newest_serial=_int(newest),
            sequence=_int(sequence),
        )
        return state, _VERDICTS[_text(verdict)]

    async def accept_non_replayable_id(self, identity: str, serial_number: int, candidate: int) -> MslError | None:
        ((_, _, verdict, _, _),) = await self._call(self._check(identity, serial_number, candidate, "any"))
        return _VERDICTS[_text(verdict)]

    async def record_new_master_token(self, identity: str, serial_number: int) -> None:
        previous, _ = await self._call(
            ("EVALSHA", _SHA["new"], 1, self._identity_key(identity), str(serial_number)),
            ("SADD", self._serial_key(serial_number), identity),
        )
        if previous is not None and _int(previous) != serial_number:
            # Superseded: revoking that serial needs no flag any more. A failure here
            # leaves a stale index entry, which a revocation only reads, never trusts.
            await self._call(("SREM", self._serial_key(int(previous)), identity))

    async def record_renewal(self, identity: str, serial_number: int, old_sequence: int, new_sequence: int) -> bool:
        key = self._identity_key(identity)
        (renewed,) = await self._call(
            ("EVALSHA", _SHA["renew"], 1, key, str(serial_number), str(old_sequence), str(new_sequence))
        )
        return bool(renewed)

    async def user_id_token_revoked(self, user: str | None, serial_number: int) -> bool:
        # Both sets share the {revoked} hash tag: one slot, one node.
        user_revoked, serial_revoked = await self._call(
            ("SISMEMBER", self._revoked_users, user if user is not None else ""),
            ("SISMEMBER", self._revoked_uits, str(serial_number)),
        )
        return (user is not None and bool(user_revoked)) or bool(serial_revoked)

    async def revoke_identity(self, identity: str) -> None:
        await self._call(("HSET", self._identity_key(identity), "revoked", "1"))

    async def revoke_master_token(self, serial_number: int) -> None:
        # The shared set first: from then on a token unknown to its identity's hash is
        # refused; then the flag in each identity hash whose newest token has the serial.
        _, identities = await self._call(
            ("SADD", self._revoked_serials, str(serial_number)),
            ("SMEMBERS", self._serial_key(serial_number)),
        )
        flags = [
            ("EVALSHA", _SHA["revoke"], 1, self._identity_key(_text(identity)), str(serial_number))
            for identity in sorted(identities)
        ]
        if flags:
            await self._call(*flags)

    async def revoke_user(self, user: str) -> None:
        await self._call(("SADD", self._revoked_users, user))

    async def revoke_user_id_token(self, serial_number: int) -> None:
        await self._call(("SADD", self._revoked_uits, str(serial_number)))

    async def forget_master_token(self, identity: str, serial_number: int) -> None:
        await self._call(("HDEL", self._identity_key(identity), f"seq:{serial_number}"))


_Command = tuple[Any, ...]

_SCRIPTS = {
    "check": _CHECK_SCRIPT,
    "renew": _RENEW_SCRIPT,
    "new": _NEW_MASTER_TOKEN_SCRIPT,
    "revoke": _REVOKE_SERIAL_SCRIPT,
}
_SHA = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in _SCRIPTS.items()}


class _Pipelines(Batcher[tuple[_Command, ...], Any]):
    """Sends each batch of operations (each a few commands) in one round trip, so the
    per-trip cost is paid once per batch instead of per command.

    A batch goes out on connections of its own (:class:`~missile.stores.resp.RespConnection`:
    commands packed and replies parsed by hiredis, each batch's replies handed over
    straight from the socket's callback), not through redis-py, whose pool checkout,
    retry wrapper, pipeline object, Python encoding and per-reply coroutines were most
    of a trip's cost. One batch is in flight at a time (the batcher's rule), so one
    connection per Redis server and event loop is all it needs. The connections are
    configured like the client's own (same URL: host, port or socket, database, user,
    password, TLS, timeouts). In a cluster each command goes to the node that owns its
    key's slot in the client's slot map; the commands of every node are written first
    and the replies awaited after, so the nodes work at once.

    A node that does not answer must not hold back the others (a cluster is three or
    more servers so that one failing does not take all identities down). A batch waits
    for a node's replies for :data:`NODE_STALL_S` at most, and not at all for a node
    whose earlier batch is still unanswered that long: that node's operations are left
    behind with a future of their result (see :mod:`missile.stores.batching`), settled
    when its replies arrive or when its connection fails, and the next batch goes out.
    What goes to that node meanwhile is written behind what it has not answered, on the
    same connection, so its commands still run in the order they were sent. A node without
    a connection (the first batch for it, or its connection failed: a reply overdue) is
    connected to in the background, since setting a connection up (AUTH, SELECT, CLIENT
    SETNAME) waits on the node too: its commands are left behind in the same way, sent
    in order once the connection is made, and if it cannot be made they go through the
    cluster client (nothing of theirs was sent).

    A command is sent once, never retried: a retry after a lost reply could run a check
    script twice and record an ID twice. A lost reply (a connection that fails after the
    write, or a batch unanswered for the client's ``socket_timeout``) fails every
    command sent on that connection whose reply is still unread, and the connection is
    dropped (as after a cancelled batch), so no later batch reads a stale reply. Only a
    command known not to have run goes again, through the cluster client, which
    follows redirections and refreshes its slot map: one whose slot has no node in the
    map, one whose node cannot be connected to (nothing was sent) and one answered
    MOVED, ASK, TRYAGAIN or CLUSTERDOWN. (The cluster client itself may resend a command
    after a lost reply; it only carries what did not run here. A new client's first
    batch waits for the client to load the slot map, then goes out like any other.)
    """

    def __init__(self, state: RedisTokenState) -> None:
        super().__init__()
        self._state = state
        self._connections: dict[str, resp.RespConnection] = {}  # by node name ('' for a single Redis)
        self._connection_loop: asyncio.AbstractEventLoop | None = None
        self._slots: dict[str, int] = {}  # key -> cluster slot (the slot's node is looked up each time)
        self._connecting: dict[str, _Connecting] = {}  # by node name, until its waiting commands are written

    async def run_batch(self, ops: Sequence[tuple[_Command, ...]]) -> Sequence[Any]:
        commands = [command for op in ops for command in op] if len(ops) > 1 else ops[0]
        results = await self._execute(commands)
        missing = [i for i, result in enumerate(results) if isinstance(result, redis.exceptions.NoScriptError)]
        if missing:
            # A restarted or flushed Redis forgot the scripts: NOSCRIPT means the command
            # did not run, so sending exactly those again is safe.
            await self._state.load_scripts()
            for i, result in zip(missing, await self._execute([commands[i] for i in missing]), strict=True):
                results[i] = result
        late = self._state.cluster and any(isinstance(r, _Late) for r in results)  # once per batch
        out: list[Any] = []
        start = 0
        for op in ops:
            part = results[start : start + len(op)]
            start += len(op)
            if late and any(isinstance(r, _Late) for r in part):
                out.append(_late_outcome(part))
            else:
                out.append(_op_result(part))
        return out

    async def _execute(self, commands: Sequence[_Command]) -> list[Any]:
        if not self._state.cluster:
            return await self._send(commands)
        return await self._send_to_nodes(commands)

    async def _send(self, commands: Sequence[_Command]) -> list[Any]:
        """``commands`` written at once to the single Redis, then one reply each (an
        error reply is that command's result)."""
        conn = self._open_connection("")
        if conn is None:
            conn = await self._connect("", self._state.client.connection_pool)
        try:
            return await conn.send(commands)
        except BaseException:
            # Replies may be left unread (a failure, a cancelled batch): the next batch
            # must not read them as its own, so it starts on a new connection.
            conn.close()
            raise

    async def _send_to_nodes(self, commands: Sequence[_Command]) -> list[Any]:
        """``commands`` sent each to its slot's node, the nodes' writes before the reads;
        what is known not to have run goes again through the cluster client."""
        client = self._state.client
        if not client.nodes_manager.slots_cache:
            # No slot map yet (a new client): load it from the URL's node first, so that
            # the first batch too goes to each master directly and a silent master
            # holds back its own commands only, not the batch through the cluster client.
            await client.initialize()
        results: list[Any] = [_UNSENT] * len(commands)
        sent: list[tuple[resp.RespConnection | None, list[int], asyncio.Future[list[Any]]]] = []
        awaited: list[asyncio.Future[list[Any]]] = []  # from nodes not known to be stalled
        now = asyncio.get_running_loop().time()
        try:
            for name, (node, indices) in self._route(commands).items():
                part = commands if len(indices) == len(commands) else [commands[i] for i in indices]
                conn = self._open_connection(name)
                if conn is None or name in self._connecting:  # see the class docstring
                    future, since = self._send_once_connected(name, node, part)
                    sent.append((None, indices, future))
                    if now - since < NODE_STALL_S:
                        awaited.append(future)
                    continue
                try:
                    future = conn.send(part)
                except Exception as exc:  # not written (a closed connection): not resent either
                    conn.close()
                    for i in indices:
                        results[i] = exc
                    continue
                sent.append((conn, indices, future))
                if not _stalled(conn, now):
                    awaited.append(future)
            await _replies(awaited)
            for conn, indices, future in sent:
                if not future.done():  # a node that does not answer: see the class docstring
                    for position, i in enumerate(indices):
                        results[i] = _Late(future, position)
                    continue
                try:
                    replies = future.result()
                except Exception as exc:
                    # A reply lost: whatever was sent may have run, so every command sent
                    # to that node fails (none is sent again), and its connection goes.
                    if conn is not None:
                        conn.close()
                    for i in indices:
                        results[i] = exc
                else:
                    for i, reply in zip(indices, replies, strict=True):
                        results[i] = reply
        except BaseException:
            for conn, _, _ in sent:
                if conn is not None:
                    conn.close()  # replies left unread: see _send
            raise
        again = [i for i, result in enumerate(results) if result is _UNSENT or isinstance(result, _NOT_RUN)]
        if again:
            for i, result in zip(again, await self._via_cluster([commands[i] for i in again]), strict=True):
                results[i] = result
        return results

    def _route(self, commands: Sequence[_Command]) -> dict[str, tuple[Any, list[int]]]:
        """Commands' indices by the node of their key's slot in the client's map; a slot
        the map has no node for (a map that does not cover every slot) is left out, for
        the cluster client. Every command the state batches names one key,
        first (EVALSHA: after the script and the key count)."""
        groups: dict[str, tuple[Any, list[int]]] = {}
        node_from_slot = self._state.client.nodes_manager.get_node_from_slot
        slots = self._slots
        for i, command in enumerate(commands):
            key = command[3] if command[0] == "EVALSHA" else command[1]
            slot = slots.get(key)
            if slot is None:
                if len(slots) >= SLOT_CACHE:
                    slots.clear()
                slot = slots[key] = redis.crc.key_slot(key.encode())
            try:
                node = node_from_slot(slot)
            except (KeyError, IndexError, redis.exceptions.RedisClusterException):
                continue  # not in the map (older redis-py raises KeyError for that)
            group = groups.get(node.name)
            if group is None:
                groups[node.name] = (node, [i])
            else:
                group[1].append(i)
        return groups

    async def _via_cluster(self, commands: Sequence[_Command]) -> list[Any]:
        """``commands`` through the cluster client's routing: slower, but it follows
        MOVED and ASK and refreshes the slot map."""
        if len(commands) == 1:
            # A pipeline object would cost more Python than the command itself. An error
            # reply is that command's result, as in a pipeline; a connection failure
            # fails the batch.
            try:
                return [await self._state.client.execute_command(*commands[0])]
            except redis.exceptions.ResponseError as exc:
                return [exc]
        pipe = self._state.pipeline()
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))

    def _send_once_connected(
        self, name: str, node: Any, part: Sequence[_Command]
    ) -> tuple[asyncio.Future[list[Any]], float]:
        """The replies to ``part``, sent to node ``name`` once connected (one connection
        attempt shared by every batch meanwhile), or through the cluster client if it
        cannot be; and when (event-loop time) that attempt started."""
        connecting = self._connecting.get(name)
        loop = asyncio.get_running_loop()
        if connecting is None:
            connecting = _Connecting(loop.create_task(self._connect(name, node)), loop.time())
            self._connecting[name] = connecting
        connecting.senders += 1
        return loop.create_task(self._send_when_connected(name, connecting, part)), connecting.started

    async def _send_when_connected(self, name: str, connecting: _Connecting, part: Sequence[_Command]) -> list[Any]:
        try:
            try:
                conn = await asyncio.shield(connecting.task)
            except Exception:  # no command of ours was sent; the cluster client also corrects its map
                sending = None
            else:
                sending = conn.send(part)  # in the order the batches asked: tasks resume in order
        finally:
            connecting.senders -= 1
            if not connecting.senders and self._connecting.get(name) is connecting:
                del self._connecting[name]  # later batches send directly (or connect again)
        return await self._via_cluster(part) if sending is None else await sending

    def _open_connection(self, name: str) -> resp.RespConnection | None:
        """This loop's open connection to server ``name``, if it has one."""
        if self._connection_loop is not asyncio.get_running_loop():
            # A connection's transport belongs to the loop that opened it (a process
            # forked with a loop of its own, or asyncio.run again, starts anew).
            self._connections, self._connection_loop = {}, asyncio.get_running_loop()
            self._connecting = {}
            return None
        conn = self._connections.get(name)
        return None if conn is None or conn.closed else conn

    async def _connect(self, name: str, factory: Any) -> resp.RespConnection:
        """A new connection to server ``name``, made like ``factory``'s (the single
        Redis's pool or a cluster node). A node that leaves the cluster keeps its
        connection here until :meth:`aclose`: a few at most, one per node ever seen."""
        conn = await resp.open_connection(resp.settings_for(factory))
        old = self._connections.get(name)
        if old is not None:
            old.close()
        self._connections[name] = conn
        return conn

    async def aclose(self) -> None:
        """Close this loop's connections (those of another loop are left to that loop)."""
        connections, self._connections = self._connections, {}
        connecting, self._connecting = self._connecting, {}
        if self._connection_loop is asyncio.get_running_loop():
            for attempt in connecting.values():
                attempt.task.cancel()
            for conn in connections.values():
                await conn.aclose()


#: A command's result before it is sent: one still unsent after a batch's writes did not
#: run, and goes through the cluster client.
_UNSENT = object()


async def _replies(batches: Sequence[asyncio.Future[list[Any]]]) -> None:
    """Return once every batch is answered (or failed), or after :data:`NODE_STALL_S`,
    leaving the rest running. About 3 us per batch more than awaiting each batch in
    turn, which cannot be bounded without cancelling the batch (``asyncio.wait`` costs
    another 3)."""
    pending = [batch for batch in batches if not batch.done()]
    if not pending:
        return
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[None] = loop.create_future()
    settle = functools.partial(_settle_none, answered)
    _when_all_done(pending, settle)
    timer = loop.call_later(NODE_STALL_S, settle)
    try:
        await answered
    finally:
        timer.cancel()


def _settle_none(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _when_all_done(futures: Sequence[asyncio.Future[Any]], then: Callable[[], None]) -> None:
    """Call ``then()`` once every one of ``futures`` (none done yet) is done."""
    remaining = len(futures)

    def one_done(_: object) -> None:
        nonlocal remaining
        remaining -= 1
        if not remaining:
            then()

    for future in futures:
        future.add_done_callback(one_done)


@dataclass(slots=True)
class _Connecting:
    """A connection being made to a node (``task``, started at event-loop time
    ``started``), and how many batches' sends wait for it."""

    task: asyncio.Task[resp.RespConnection]
    started: float
    senders: int = 0


def _stalled(conn: resp.RespConnection, now: float) -> bool:
    """Whether ``conn`` has left a batch unanswered for :data:`NODE_STALL_S` or more at
    event-loop time ``now``."""
    since = conn.waiting_since
    return since is not None and now - since >= NODE_STALL_S


def _op_result(replies: list[Any]) -> Any:
    """An operation's result from its commands' replies: the first failure, or them all."""
    failure = next((r for r in replies if isinstance(r, Exception)), None)
    return failure if failure is not None else replies


@dataclass(frozen=True, slots=True)
class _Late:
    """The reply of a command sent to a node that has not answered yet: the reply at
    ``position`` of the node's ``batch``."""

    batch: asyncio.Future[list[Any]]
    position: int

    def outcome(self) -> Any:
        """The reply, or the exception that failed the batch (a cancelled batch is a
        closed connection: the caller hears of a failure, never of a cancellation)."""
        if self.batch.cancelled():
            return redis.exceptions.ConnectionError("connection to Redis closed")
        error = self.batch.exception()
        return error if error is not None else self.batch.result()[self.position]


def _late_outcome(part: Sequence[Any]) -> asyncio.Future[list[Any]]:
    """The future result of an operation (``part``: its commands' results) some of whose
    commands wait on a node that has not answered: its replies, or its first failure."""
    outcome: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    def settle() -> None:
        result = _op_result([r.outcome() if isinstance(r, _Late) else r for r in part])
        if isinstance(result, Exception):
            outcome.set_exception(result)
        else:
            outcome.set_result(result)

    _when_all_done(list({id(r.batch): r.batch for r in part if isinstance(r, _Late)}.values()), settle)
    return outcome


#: The error replies of a cluster node saying that a command did not run there: the slot
#: is elsewhere (MOVED, which MovedError subclasses from ASK), moving (ASK), being
#: migrated (TRYAGAIN) or the cluster is down (CLUSTERDOWN).
_NOT_RUN = (
    (redis.exceptions.AskError, redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError)
    if _REDIS_INSTALLED
    else ()
)

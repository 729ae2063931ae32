"""Server token-factory state in Redis, shared by a fleet of servers (control.md §2.2, §7).

:class:`RedisTokenFactory` is the :class:`~missile.tokens.factory.BaseTokenFactory`
policy (identical to :class:`~missile.tokens.factory.InMemoryTokenFactory`) with its
state in Redis, so every server behind one Redis sees the same revocations, sequence
numbers and replay windows.

Keys (all under ``prefix``): hashes ``mt:sequence`` (serial → newest sequence number),
``mt:newest`` (identity → newest serial), ``nonreplayable`` ("serial:identity" → largest
accepted ID) and sets ``revoked:identities|serials|users|uits``. For Redis Cluster use a
hash-tagged prefix such as ``"{missile}:"`` so that all keys share one slot.

Atomicity: a new master token's newest-serial switch and a renewal's sequence bump are
Lua scripts (EVALSHA); accepting a non-replayable ID reads the largest ID, applies
:func:`~missile.tokens.factory.check_non_replayable_id` and stores the new ID with a Lua
compare-and-set, retrying when another server won the race, so no ID is accepted twice.
Creating a new master token also discards the replay window of the identity's previous
serial number, whose tokens are refused from then on (control.md §7 allows it).

If Redis cannot be reached or fails, every check and issue method raises
:class:`~missile.errors.MslException` with ``INTERNAL_EXCEPTION`` (response code
TRANSIENT_FAILURE): nothing is ever accepted unchecked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from missile.errors import MslError, MslException
from missile.tokens.factory import DAY_MS, BaseTokenFactory, MasterTokenState, check_non_replayable_id

__all__ = ["RedisTokenFactory"]

#: Compare-and-set attempts of one non-replayable ID before giving up (TRANSIENT_FAILURE).
MAX_CAS_ATTEMPTS = 1000

# KEYS[1] hash; ARGV: field, expected value ('' = absent), new value.
_CAS_SCRIPT = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == false then current = '' end
if current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# KEYS[1] sequence hash; ARGV: serial, old sequence, new sequence. Unknown serials renew.
_RENEW_SCRIPT = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# KEYS: newest hash, sequence hash, nonreplayable hash; ARGV: identity, serial.
_NEW_MASTER_TOKEN_SCRIPT = """
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if previous then
  redis.call('HDEL', KEYS[2], previous)
  redis.call('HDEL', KEYS[3], previous .. ':' .. ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[2], '0')
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


@contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        # The cause keeps the details; the message says nothing about the server.
        raise MslException(MslError.INTERNAL_EXCEPTION, "token state store unavailable", cause=exc) from exc


class RedisTokenFactory(BaseTokenFactory):
    """A token factory whose state lives in Redis (control.md §2.2, §7).

    ``redis_client`` is a ``redis://`` URL (a client is then created with the given
    timeouts and closed by :meth:`close`) or an existing :class:`redis.Redis` client.
    """

    def __init__(
        self,
        redis_client: str | redis.Redis,
        *,
        prefix: str = "missile:",
        master_token_renewal_ms: int = DAY_MS,
        master_token_expiration_ms: int = 7 * DAY_MS,
        user_id_token_renewal_ms: int = DAY_MS,
        user_id_token_expiration_ms: int = 7 * DAY_MS,
        socket_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            master_token_renewal_ms=master_token_renewal_ms,
            master_token_expiration_ms=master_token_expiration_ms,
            user_id_token_renewal_ms=user_id_token_renewal_ms,
            user_id_token_expiration_ms=user_id_token_expiration_ms,
        )
        self._owned = isinstance(redis_client, str)
        if isinstance(redis_client, str):
            self._redis: redis.Redis = redis.Redis.from_url(
                redis_client, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
        else:
            self._redis = redis_client
        self.prefix = prefix
        self._sequence_key = f"{prefix}mt:sequence"
        self._newest_key = f"{prefix}mt:newest"
        self._nonreplayable_key = f"{prefix}nonreplayable"
        self._revoked_identities = f"{prefix}revoked:identities"
        self._revoked_serials = f"{prefix}revoked:serials"
        self._revoked_users = f"{prefix}revoked:users"
        self._revoked_uits = f"{prefix}revoked:uits"
        # register_script only computes the SHA; EVALSHA falls back to EVAL once per server.
        self._cas = self._redis.register_script(_CAS_SCRIPT)
        self._renew = self._redis.register_script(_RENEW_SCRIPT)
        self._new_master_token = self._redis.register_script(_NEW_MASTER_TOKEN_SCRIPT)

    @property
    def client(self) -> redis.Redis:
        """The Redis client."""
        return self._redis

    def close(self) -> None:
        """Close the client if this factory created it."""
        if self._owned:
            self._redis.close()

    @staticmethod
    def _nonreplayable_field(identity: str, serial_number: int) -> str:
        # The serial number has no ':' so the field is unambiguous.
        return f"{serial_number}:{identity}"

    # -- revocation -----------------------------------------------------------------------

    def _revoke(self, key: str, value: str) -> None:
        with _guard():
            self._redis.sadd(key, value)

    def revoke_identity(self, identity: str) -> None:
        self._revoke(self._revoked_identities, identity)

    def revoke_master_token(self, serial_number: int) -> None:
        self._revoke(self._revoked_serials, str(serial_number))

    def revoke_user(self, user: str) -> None:
        self._revoke(self._revoked_users, user)

    def revoke_user_id_token(self, serial_number: int) -> None:
        self._revoke(self._revoked_uits, str(serial_number))

    def forget_master_token(self, serial_number: int) -> None:
        with _guard():
            self._redis.hdel(self._sequence_key, str(serial_number))

    # -- state primitives ---------------------------------------------------------------

    def _master_token_state(self, identity: str | None, serial_number: int) -> MasterTokenState:
        with _guard():
            pipe = self._redis.pipeline(transaction=True)
            pipe.sismember(self._revoked_identities, identity if identity is not None else "")
            pipe.sismember(self._revoked_serials, str(serial_number))
            pipe.hget(self._newest_key, identity or "")
            pipe.hget(self._sequence_key, str(serial_number))
            identity_revoked, serial_revoked, newest, sequence = pipe.execute()
        newest_text, sequence_text = _text(newest), _text(sequence)
        return MasterTokenState(
            identity_revoked=identity is not None and bool(identity_revoked),
            serial_revoked=bool(serial_revoked),
            newest_serial=int(newest_text) if newest_text is not None else None,
            sequence=int(sequence_text) if sequence_text is not None else None,
        )

    def _accept_largest(self, identity: str, serial_number: int, candidate: int) -> MslError | None:
        field = self._nonreplayable_field(identity, serial_number)
        with _guard():
            for _ in range(MAX_CAS_ATTEMPTS):
                stored = _text(self._redis.hget(self._nonreplayable_key, field))
                error = check_non_replayable_id(int(stored) if stored is not None else 0, candidate)
                if error is not None:
                    return error
                if self._cas(keys=[self._nonreplayable_key], args=[field, stored or "", str(candidate)]):
                    return None
        raise MslException(MslError.INTERNAL_EXCEPTION, "non-replayable ID update contended")

    def _record_new_master_token(self, identity: str, serial_number: int) -> None:
        with _guard():
            self._new_master_token(
                keys=[self._newest_key, self._sequence_key, self._nonreplayable_key],
                args=[identity, str(serial_number)],
            )

    def _record_renewal(self, serial_number: int, old_sequence: int, new_sequence: int) -> bool:
        with _guard():
            return bool(
                self._renew(keys=[self._sequence_key], args=[str(serial_number), str(old_sequence), str(new_sequence)])
            )

    def _user_id_token_revoked(self, user: str | None, serial_number: int) -> bool:
        with _guard():
            pipe = self._redis.pipeline(transaction=True)
            pipe.sismember(self._revoked_users, user if user is not None else "")
            pipe.sismember(self._revoked_uits, str(serial_number))
            user_revoked, serial_revoked = pipe.execute()
        return (user is not None and bool(user_revoked)) or bool(serial_revoked)

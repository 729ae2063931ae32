"""A token's store key is computed once and is always its fields' (tokens/master.py,
tokens/user_id.py): whatever way the token was made (created, parsed, parsed
unverified, ``replace()``d as the SQLite store does), its key, equality and hash are
those of (serial, sequence, expiration) for a master token and (serial, master token
serial) for a user ID token."""

from __future__ import annotations

import dataclasses

from missile.crypto.null import ClientMslCryptoContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import decode, encode
from missile.tokens import MasterToken
from missile.tokens.user import MslUser
from missile.tokens.user_id import UserIdToken

MSL = SymmetricCryptoContext("msl", bytes(range(16)), bytes(range(32, 64)))


def _master(sequence: int = 7, serial: int = 42, expiration_ms: int = 1_700_086_400_999) -> MasterToken:
    return MasterToken.create(
        MSL,
        renewal_window_ms=1_700_000_000_500,
        expiration_ms=expiration_ms,
        sequence_number=sequence,
        serial_number=serial,
        identity="device-1",
        encryption_key=bytes(range(200, 216)),
        signature_key=bytes(range(64, 96)),
    )


def _master_key(token: MasterToken) -> tuple[int, int, int]:
    return (token.serial_number, token.sequence_number, token.expiration)


def test_master_token_key_is_its_fields_however_made() -> None:
    created = _master()
    parsed = MasterToken.parse(decode(encode(created)), MSL)
    unverified = MasterToken.parse(decode(encode(created)), ClientMslCryptoContext())
    assert not unverified.verified
    for token in (created, parsed, unverified):
        assert token.key == _master_key(token) == (42, 7, 1_700_086_400)
        assert hash(token) == hash(_master_key(token))
        assert token == created and len({token, created}) == 1
    # replace() builds a new token: its key follows its own fields, not the original's.
    for changes in ({"sequence_number": 8}, {"serial_number": 43}, {"expiration": 1}, {"verified": False}):
        _ = created.key, hash(created)  # computed on the original first
        changed = dataclasses.replace(created, **changes)
        assert changed.key == _master_key(changed)
        assert hash(changed) == hash(_master_key(changed))
        assert (changed == created) == (changed.key == created.key)


def test_master_tokens_as_dictionary_keys() -> None:
    tokens = [_master(sequence=s, serial=n) for s in (1, 2) for n in (5, 6)]
    table = {token: i for i, token in enumerate(tokens)}
    for i, token in enumerate(tokens):
        assert table[MasterToken.parse(decode(encode(token)), MSL)] == i
    assert len(table) == 4


def test_user_id_token_key_is_its_fields_however_made() -> None:
    master = _master()
    created = UserIdToken.create(
        MSL,
        renewal_window_ms=1_700_000_000_500,
        expiration_ms=1_700_086_400_999,
        master_token=master,
        serial_number=9,
        user=MslUser("alice"),
    )
    parsed = UserIdToken.parse(decode(encode(created)), MSL, master)
    for token in (created, parsed):
        assert token.key == (9, 42)
        assert hash(token) == hash((9, 42))
        assert token == created
    changed = dataclasses.replace(created, serial_number=10)
    assert changed.key == (10, 42) and changed != created

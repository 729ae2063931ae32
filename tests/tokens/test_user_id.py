"""UserIdToken: creation, parsing, binding and every parse failure (tokens.md §2)."""

from __future__ import annotations

from typing import Any

import pytest

from missile.clock import FixedClock
from missile.crypto.null import ClientMslCryptoContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MAX_LONG_VALUE, MslObject, decode, encode
from missile.errors import MslEncodingException, MslError, MslException, MslUserIdTokenException
from missile.tokens import MasterToken, MslUser, UserIdToken

MSL = SymmetricCryptoContext("msl", bytes(range(16)), bytes(range(32, 64)))
OTHER = SymmetricCryptoContext("other", bytes(range(1, 17)), bytes(range(2, 34)))

MT = MasterToken.create(
    MSL,
    renewal_window_ms=1_000_000,
    expiration_ms=2_000_000,
    sequence_number=1,
    serial_number=42,
    identity="device-1",
    encryption_key=bytes(16),
    signature_key=bytes(32),
)
MT_OTHER_SERIAL = MasterToken.create(
    MSL,
    renewal_window_ms=1_000_000,
    expiration_ms=2_000_000,
    sequence_number=1,
    serial_number=43,
    identity="device-1",
    encryption_key=bytes(16),
    signature_key=bytes(32),
)


def create(**overrides: Any) -> UserIdToken:
    kwargs: dict[str, Any] = {
        "renewal_window_ms": 3_000_500,
        "expiration_ms": 4_000_999,
        "master_token": MT,
        "serial_number": 77,
        "user": MslUser("alice@example.com"),
        "issuer_data": {"plan": "basic"},
    }
    kwargs.update(overrides)
    return UserIdToken.create(MSL, **kwargs)


def wire(token: UserIdToken) -> MslObject:
    return decode(encode(token))


_DEFAULT: Any = object()


def tokendata(userdata: Any = _DEFAULT, **overrides: Any) -> bytes:
    fields: dict[str, Any] = {
        "renewalwindow": 3000,
        "expiration": 4000,
        "mtserialnumber": 42,
        "serialnumber": 77,
        "userdata": MSL.encrypt(encode({"identity": "alice"})) if userdata is _DEFAULT else userdata,
    }
    fields.update(overrides)
    return encode({k: v for k, v in fields.items() if v is not None})


def signed(td: bytes) -> MslObject:
    return decode(encode({"tokendata": td, "signature": MSL.sign(td)}))


def parse_error(obj: MslObject, crypto: Any = MSL, master_token: MasterToken | None = MT) -> MslError:
    with pytest.raises(MslException) as exc:
        UserIdToken.parse(obj, crypto, master_token)
    return exc.value.error


def with_userdata(plaintext: bytes) -> MslObject:
    return signed(tokendata(userdata=MSL.encrypt(plaintext)))


# -- round trip ---------------------------------------------------------------------------


def test_create() -> None:
    token = create()
    assert token.verified and token.decrypted
    assert token.user == MslUser("alice@example.com")
    assert token.issuer_data == {"plan": "basic"}
    assert (token.renewal_window, token.expiration) == (3000, 4000)
    assert (token.mt_serial_number, token.serial_number) == (42, 77)
    assert token.is_bound_to(MT) and not token.is_bound_to(MT_OTHER_SERIAL) and not token.is_bound_to(None)
    data = decode(token.tokendata)
    assert set(data.keys()) == {"renewalwindow", "expiration", "mtserialnumber", "serialnumber", "userdata"}
    userdata = decode(MSL.decrypt(data.get_bytes("userdata")))
    assert userdata.to_dict() == {"identity": "alice@example.com", "issuerdata": {"plan": "basic"}}


def test_create_without_issuer_data_omits_it() -> None:
    token = create(issuer_data=None)
    userdata = decode(MSL.decrypt(decode(token.tokendata).get_bytes("userdata")))
    assert userdata.to_dict() == {"identity": "alice@example.com"}
    assert UserIdToken.parse(wire(token), MSL, MT).issuer_data is None


def test_round_trip() -> None:
    token = create()
    parsed = UserIdToken.parse(wire(token), MSL, MT)
    assert parsed.verified and parsed.decrypted
    assert parsed.user == MslUser("alice@example.com")
    assert parsed.issuer_data == {"plan": "basic"}
    assert parsed == token and hash(parsed) == hash(token)
    assert (parsed.renewal_window, parsed.expiration) == (3000, 4000)
    assert encode(parsed) == encode(token)
    assert parsed.tokendata == token.tokendata and parsed.signature == token.signature


def test_repr_names_user_but_not_bytes() -> None:
    text = repr(create())
    assert "alice@example.com" in text and "77" in text
    assert "tokendata" not in text


# -- verification --------------------------------------------------------------------------


@pytest.mark.parametrize("crypto", [OTHER, ClientMslCryptoContext()])
def test_unverified_parse_keeps_user_none(crypto: Any) -> None:
    calls: list[str] = []

    def factory(identity: str) -> MslUser:
        calls.append(identity)
        return MslUser(identity)

    parsed = UserIdToken.parse(wire(create()), crypto, MT, user_factory=factory)
    assert not parsed.verified and not parsed.decrypted
    assert parsed.user is None and parsed.issuer_data is None
    assert calls == []
    assert (parsed.mt_serial_number, parsed.serial_number) == (42, 77)
    assert parsed == create()


def test_tampered_signature_is_unverified() -> None:
    token = create()
    bad = token.signature[:-1] + bytes([token.signature[-1] ^ 0x80])
    parsed = UserIdToken.parse(decode(encode({"tokendata": token.tokendata, "signature": bad})), MSL, MT)
    assert not parsed.verified and parsed.user is None


def test_custom_user_factory_is_used() -> None:
    class RichUser(MslUser):
        pass

    seen: list[str] = []

    def factory(identity: str) -> MslUser:
        seen.append(identity)
        return RichUser("rich:" + identity)

    parsed = UserIdToken.parse(wire(create()), MSL, MT, user_factory=factory)
    assert seen == ["alice@example.com"]
    assert isinstance(parsed.user, RichUser)
    assert parsed.user.identity == "rich:alice@example.com"


def test_user_factory_failure_propagates() -> None:
    def factory(identity: str) -> MslUser:
        raise MslException(MslError.USERIDTOKEN_IDENTITY_INVALID, identity)

    assert parse_error_with_factory(wire(create()), factory) is MslError.USERIDTOKEN_IDENTITY_INVALID


def parse_error_with_factory(obj: MslObject, factory: Any) -> MslError:
    with pytest.raises(MslException) as exc:
        UserIdToken.parse(obj, MSL, MT, user_factory=factory)
    return exc.value.error


# -- binding -------------------------------------------------------------------------------


def test_master_token_none_is_mismatch() -> None:
    with pytest.raises(MslUserIdTokenException) as exc:
        UserIdToken.parse(wire(create()), MSL, None)
    assert exc.value.error is MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH
    assert exc.value.master_token is None


def test_different_master_token_serial_is_mismatch() -> None:
    with pytest.raises(MslUserIdTokenException) as exc:
        UserIdToken.parse(wire(create()), MSL, MT_OTHER_SERIAL)
    assert exc.value.error is MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH
    assert exc.value.master_token is MT_OTHER_SERIAL


def test_mismatch_also_when_unverified() -> None:
    assert parse_error(wire(create()), OTHER, MT_OTHER_SERIAL) is MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH


def test_binding_uses_serial_only() -> None:
    # A renewed master token (same serial, new sequence number) still binds.
    renewed = MasterToken.create(
        MSL,
        renewal_window_ms=5_000_000,
        expiration_ms=6_000_000,
        sequence_number=2,
        serial_number=42,
        identity="device-1",
        encryption_key=bytes(16),
        signature_key=bytes(32),
    )
    assert UserIdToken.parse(wire(create()), MSL, renewed).decrypted


# -- outer object and token data -----------------------------------------------------------


def test_empty_tokendata_is_missing() -> None:
    obj = decode(encode({"tokendata": b"", "signature": b"x"}))
    assert parse_error(obj) is MslError.USERIDTOKEN_TOKENDATA_MISSING


@pytest.mark.parametrize("outer", [{"signature": "AAAA"}, {"tokendata": "eyJ9"}, {"tokendata": 1, "signature": ""}])
def test_missing_outer_keys(outer: dict[str, Any]) -> None:
    assert parse_error(MslObject(outer)) is MslError.MSL_PARSE_ERROR


@pytest.mark.parametrize("td", [b"not json", b"[]", b"{", b"\x80"])
def test_tokendata_not_json(td: bytes) -> None:
    assert parse_error(signed(td)) is MslError.USERIDTOKEN_TOKENDATA_PARSE_ERROR


@pytest.mark.parametrize("key", ["renewalwindow", "expiration", "mtserialnumber", "serialnumber", "userdata"])
def test_tokendata_missing_field(key: str) -> None:
    assert parse_error(signed(tokendata(**{key: None}))) is MslError.USERIDTOKEN_TOKENDATA_PARSE_ERROR


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("renewalwindow", "3000"),
        ("expiration", False),
        ("mtserialnumber", "42"),
        ("serialnumber", [77]),
        ("userdata", "not base64!"),
        ("userdata", {"identity": "alice"}),
    ],
)
def test_tokendata_wrong_types(key: str, value: Any) -> None:
    assert parse_error(signed(tokendata(**{key: value}))) is MslError.USERIDTOKEN_TOKENDATA_PARSE_ERROR


def test_expires_before_renewal() -> None:
    assert parse_error(signed(tokendata(expiration=2999))) is MslError.USERIDTOKEN_EXPIRES_BEFORE_RENEWAL
    with pytest.raises(MslException) as exc:
        create(renewal_window_ms=3_000_000, expiration_ms=2_999_999)
    assert exc.value.error is MslError.USERIDTOKEN_EXPIRES_BEFORE_RENEWAL
    assert UserIdToken.parse(signed(tokendata(expiration=3000)), MSL, MT).expiration == 3000


@pytest.mark.parametrize("value", [-1, MAX_LONG_VALUE + 1])
def test_mt_serial_number_out_of_range(value: int) -> None:
    obj = signed(tokendata(mtserialnumber=value))
    assert parse_error(obj) is MslError.USERIDTOKEN_MASTERTOKEN_SERIAL_NUMBER_OUT_OF_RANGE


@pytest.mark.parametrize("value", [-1, MAX_LONG_VALUE + 1])
def test_serial_number_out_of_range(value: int) -> None:
    assert parse_error(signed(tokendata(serialnumber=value))) is MslError.USERIDTOKEN_SERIAL_NUMBER_OUT_OF_RANGE
    with pytest.raises(MslException) as exc:
        create(serial_number=value)
    assert exc.value.error is MslError.USERIDTOKEN_SERIAL_NUMBER_OUT_OF_RANGE


def test_serial_range_bounds() -> None:
    mt_max = MasterToken(
        renewal_window=1,
        expiration=2,
        sequence_number=0,
        serial_number=MAX_LONG_VALUE,
        tokendata=b"",
        signature=b"",
        verified=False,
    )
    parsed = UserIdToken.parse(signed(tokendata(mtserialnumber=MAX_LONG_VALUE, serialnumber=0)), MSL, mt_max)
    assert (parsed.mt_serial_number, parsed.serial_number) == (MAX_LONG_VALUE, 0)
    token = create(serial_number=MAX_LONG_VALUE, master_token=mt_max)
    assert UserIdToken.parse(wire(token), MSL, mt_max).serial_number == MAX_LONG_VALUE


def test_empty_userdata_is_missing() -> None:
    obj = signed(tokendata(userdata=b""))
    assert parse_error(obj) is MslError.USERIDTOKEN_USERDATA_MISSING
    assert parse_error(obj, OTHER) is MslError.USERIDTOKEN_USERDATA_MISSING


# -- user data -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "plaintext",
    [
        b"not json",
        b"[]",
        b"",
        b"{}",
        b'{"identity": 5}',
        b'{"identity": null}',
        b'{"identity": "alice", "issuerdata": "x"}',
        b'{"identity": "alice", "issuerdata": [1]}',
    ],
)
def test_userdata_parse_errors(plaintext: bytes) -> None:
    assert parse_error(with_userdata(plaintext)) is MslError.USERIDTOKEN_USERDATA_PARSE_ERROR


def test_empty_identity_is_invalid() -> None:
    assert parse_error(with_userdata(b'{"identity": ""}')) is MslError.USERIDTOKEN_IDENTITY_INVALID
    with pytest.raises(MslException) as exc:
        create(user=MslUser(""))
    assert exc.value.error is MslError.USERIDTOKEN_IDENTITY_INVALID


def test_userdata_decrypt_failure_is_the_crypto_error() -> None:
    with pytest.raises(MslException) as exc:
        UserIdToken.parse(signed(tokendata(userdata=b"garbage")), MSL, MT)
    assert exc.value.error is MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR
    assert not isinstance(exc.value, MslEncodingException)


def test_userdata_with_issuer_data() -> None:
    parsed = UserIdToken.parse(with_userdata(b'{"identity": "bob", "issuerdata": {"k": [1, 2]}}'), MSL, MT)
    assert parsed.user == MslUser("bob")
    assert parsed.issuer_data == {"k": [1, 2]}


# -- time checks and identity ------------------------------------------------------------------


def test_time_checks() -> None:
    clock = FixedClock(0)
    token = create(clock=clock)
    assert not token.is_renewable() and not token.is_expired()
    assert token.is_renewable(3_000_000) and not token.is_renewable(2_999_999)
    assert token.is_expired(4_000_000) and not token.is_expired(3_999_999)
    clock.now_ms = 4_000_000
    assert token.is_renewable() and token.is_expired()
    unverified = UserIdToken.parse(wire(token), OTHER, MT, clock=clock)
    assert unverified.is_renewable() and not unverified.is_expired()
    clock.now_ms = 0
    assert unverified.is_renewable() and not unverified.is_expired()
    assert unverified.is_expired(4_000_000)


def test_equality_by_serial_and_mt_serial() -> None:
    a = create()
    assert a == create(user=MslUser("someone-else"), renewal_window_ms=0, expiration_ms=1)
    assert a != create(serial_number=78)
    assert a != create(master_token=MT_OTHER_SERIAL)
    assert a != "x"
    assert a.key == (77, 42)
    assert len({a, create(), create(serial_number=1)}) == 2

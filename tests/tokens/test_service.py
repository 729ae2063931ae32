"""ServiceToken: creation, parsing, crypto context selection, binding, compression (tokens.md §3)."""

from __future__ import annotations

from typing import Any

import pytest

from missile.crypto.null import NullCryptoContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MAX_LONG_VALUE, MslObject, decode, encode
from missile.encoding.compression import CompressionAlgorithm
from missile.errors import MslError, MslException, MslInternalException
from missile.tokens import MasterToken, MslUser, ServiceToken, UserIdToken, select_crypto_context

MSL = SymmetricCryptoContext("msl", bytes(range(16)), bytes(range(32, 64)))
ST_A = SymmetricCryptoContext("st_a", bytes(range(100, 116)), bytes(range(120, 152)))
ST_B = SymmetricCryptoContext("st_b", bytes(range(150, 166)), bytes(range(170, 202)))
NULL = NullCryptoContext()


def master_token(serial: int) -> MasterToken:
    return MasterToken.create(
        MSL,
        renewal_window_ms=1_000_000,
        expiration_ms=2_000_000,
        sequence_number=0,
        serial_number=serial,
        identity="device-1",
        encryption_key=bytes(16),
        signature_key=bytes(32),
    )


def user_id_token(mt: MasterToken, serial: int) -> UserIdToken:
    return UserIdToken.create(
        MSL,
        renewal_window_ms=1_000_000,
        expiration_ms=2_000_000,
        master_token=mt,
        serial_number=serial,
        user=MslUser("alice"),
    )


MT = master_token(42)
MT2 = master_token(43)
UIT = user_id_token(MT, 77)
UIT2 = user_id_token(MT, 78)
UIT_ON_MT2 = user_id_token(MT2, 79)

DATA = b"cart=1,2,3;session=abc"
COMPRESSIBLE = b"The quick brown fox jumps over the lazy dog. " * 40
INCOMPRESSIBLE = bytes(range(256))


def wire(token: ServiceToken) -> MslObject:
    return decode(encode(token))


def tokendata(**fields: Any) -> bytes:
    base: dict[str, Any] = {"name": "com.example.t", "encrypted": False, "servicedata": b"hello"}
    base.update(fields)
    return encode({k: v for k, v in base.items() if v is not None})


def signed(td: bytes, crypto: Any = ST_A) -> MslObject:
    return decode(encode({"tokendata": td, "signature": crypto.sign(td)}))


def parse_error(obj: MslObject, contexts: Any = None, mt: Any = None, uit: Any = None) -> MslError:
    with pytest.raises(MslException) as exc:
        ServiceToken.parse(obj, {"": ST_A} if contexts is None else contexts, mt, uit)
    return exc.value.error


# -- creation and round trip -------------------------------------------------------------------


@pytest.mark.parametrize("encrypted", [True, False])
def test_unbound_round_trip(encrypted: bool) -> None:
    token = ServiceToken.create("com.example.t", DATA, ST_A, encrypted=encrypted)
    assert token.verified and token.decrypted and not token.deleted
    assert token.data == DATA
    assert token.is_unbound and not token.is_master_token_bound and not token.is_user_id_token_bound
    assert token.mt_serial_number is None and token.uit_serial_number is None
    data = decode(token.tokendata)
    # Unbound serial numbers are omitted, never -1.
    assert "mtserialnumber" not in data and "uitserialnumber" not in data
    assert b"-1" not in token.tokendata
    assert data.get_bool("encrypted") is encrypted
    assert "compressionalgo" not in data
    if encrypted:
        assert data.get_bytes("servicedata") != DATA
        assert ST_A.decrypt(data.get_bytes("servicedata")) == DATA
    else:
        assert data.get_bytes("servicedata") == DATA
    assert ST_A.verify(token.tokendata, token.signature)

    parsed = ServiceToken.parse(wire(token), {"com.example.t": ST_A})
    assert parsed.verified and parsed.data == DATA and parsed.encrypted is encrypted
    assert parsed.name == "com.example.t" and parsed.is_unbound
    assert parsed == token and hash(parsed) == hash(token)
    assert encode(parsed) == encode(token)


def test_master_token_bound_round_trip() -> None:
    token = ServiceToken.create("t", DATA, ST_A, master_token=MT)
    assert token.is_master_token_bound and not token.is_user_id_token_bound and not token.is_unbound
    assert token.is_bound_to_master_token(MT) and not token.is_bound_to_master_token(MT2)
    assert not token.is_bound_to_master_token(None)
    data = decode(token.tokendata)
    assert data.get_int("mtserialnumber") == 42 and "uitserialnumber" not in data
    parsed = ServiceToken.parse(wire(token), {"t": ST_A}, MT)
    assert parsed.mt_serial_number == 42 and parsed.uit_serial_number is None and parsed.data == DATA


def test_user_id_token_bound_round_trip() -> None:
    token = ServiceToken.create("t", DATA, ST_A, master_token=MT, user_id_token=UIT)
    data = decode(token.tokendata)
    assert data.get_int("mtserialnumber") == 42 and data.get_int("uitserialnumber") == 77
    assert token.is_bound_to_user_id_token(UIT) and not token.is_bound_to_user_id_token(UIT2)
    assert not token.is_bound_to_user_id_token(None)
    parsed = ServiceToken.parse(wire(token), {"t": ST_A}, MT, UIT)
    assert (parsed.mt_serial_number, parsed.uit_serial_number) == (42, 77)
    assert parsed.is_master_token_bound and parsed.is_user_id_token_bound
    assert parsed.data == DATA


def test_user_id_token_only_binding() -> None:
    token = ServiceToken.create("t", DATA, ST_A, user_id_token=UIT)
    data = decode(token.tokendata)
    assert "mtserialnumber" not in data and data.get_int("uitserialnumber") == 77
    parsed = ServiceToken.parse(wire(token), {"t": ST_A}, None, UIT)
    assert parsed.mt_serial_number is None and parsed.uit_serial_number == 77


def test_create_with_unbound_user_id_token_is_internal_error() -> None:
    with pytest.raises(MslInternalException) as exc:
        ServiceToken.create("t", DATA, ST_A, master_token=MT, user_id_token=UIT_ON_MT2)
    assert exc.value.error is MslError.INTERNAL_EXCEPTION


def test_repr() -> None:
    text = repr(ServiceToken.create("com.example.t", DATA, ST_A, master_token=MT))
    assert "com.example.t" in text and "42" in text
    assert DATA.decode() not in text


# -- compression ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", [CompressionAlgorithm.GZIP, CompressionAlgorithm.LZW])
@pytest.mark.parametrize("encrypted", [True, False])
def test_compressed_round_trip(algo: CompressionAlgorithm, encrypted: bool) -> None:
    token = ServiceToken.create("t", COMPRESSIBLE, ST_A, encrypted=encrypted, compression=algo)
    assert token.compression_algo is algo
    data = decode(token.tokendata)
    assert data.get_string("compressionalgo") == algo.value
    raw = data.get_bytes("servicedata")
    if not encrypted:
        assert len(raw) < len(COMPRESSIBLE)
    parsed = ServiceToken.parse(wire(token), {"": ST_A})
    assert parsed.compression_algo is algo
    assert parsed.data == COMPRESSIBLE


@pytest.mark.parametrize("algo", [CompressionAlgorithm.GZIP, CompressionAlgorithm.LZW])
@pytest.mark.parametrize("payload", [INCOMPRESSIBLE, b"ab"])
def test_compression_dropped_when_not_smaller(algo: CompressionAlgorithm, payload: bytes) -> None:
    token = ServiceToken.create("t", payload, ST_A, encrypted=False, compression=algo)
    assert token.compression_algo is None
    data = decode(token.tokendata)
    assert "compressionalgo" not in data
    assert data.get_bytes("servicedata") == payload
    assert ServiceToken.parse(wire(token), {"": ST_A}).data == payload


def test_unknown_compression_algorithm() -> None:
    obj = signed(tokendata(compressionalgo="BZIP2"))
    assert parse_error(obj) is MslError.UNIDENTIFIED_COMPRESSION
    # Recognised even when the token cannot be verified.
    assert parse_error(obj, {}) is MslError.UNIDENTIFIED_COMPRESSION
    assert parse_error(signed(tokendata(compressionalgo="gzip"))) is MslError.UNIDENTIFIED_COMPRESSION


def test_mistyped_compression_algorithm() -> None:
    assert parse_error(signed(tokendata(compressionalgo=1))) is MslError.MSL_PARSE_ERROR


@pytest.mark.parametrize("algo", [CompressionAlgorithm.GZIP, CompressionAlgorithm.LZW])
def test_decompression_bomb(algo: CompressionAlgorithm) -> None:
    bomb = bytes(1_000_000)
    # Missile never sends such a token (the ratio cap applies when creating too).
    assert ServiceToken.create("t", bomb, ST_A, encrypted=False, compression=algo).compression_algo is None
    token = ServiceToken.create("t", bomb, ST_A, encrypted=False, compression=algo, max_ratio=None)
    assert token.compression_algo is algo
    assert parse_error(wire(token)) is MslError.UNCOMPRESSION_ERROR
    # A caller allowing a larger ratio gets the data.
    assert ServiceToken.parse(wire(token), {"": ST_A}, max_deflate_ratio=10_000).data == bomb


def test_bomb_not_inflated_when_unverified() -> None:
    token = ServiceToken.create(
        "t", bytes(1_000_000), ST_A, encrypted=False, compression=CompressionAlgorithm.GZIP, max_ratio=None
    )
    parsed = ServiceToken.parse(wire(token), {"": ST_B})
    assert not parsed.verified and parsed.data is None


def test_corrupt_compressed_data() -> None:
    obj = signed(tokendata(compressionalgo="GZIP", servicedata=b"\x1f\x8bnot gzip at all"))
    assert parse_error(obj) is MslError.UNCOMPRESSION_ERROR


# -- deletion tokens ------------------------------------------------------------------------------


def test_deletion_token_with_null_context() -> None:
    token = ServiceToken.create("t", b"", NULL, encrypted=False)
    assert token.deleted and token.data == b"" and not token.encrypted
    assert token.signature == b""
    data = decode(token.tokendata)
    assert data.get_bytes("servicedata") == b"" and data.get_bool("encrypted") is False
    parsed = ServiceToken.parse(wire(token), {"": NULL})
    assert parsed.verified and parsed.deleted and parsed.data == b"" and not parsed.encrypted


def test_deletion_recognised_without_context() -> None:
    token = ServiceToken.create("t", b"", NULL, encrypted=False, master_token=MT)
    for contexts in ({}, {"": ST_A}):
        parsed = ServiceToken.parse(wire(token), contexts, MT)
        assert not parsed.verified
        assert parsed.deleted and parsed.data == b"" and parsed.decrypted


def test_empty_data_is_never_encrypted_or_compressed() -> None:
    token = ServiceToken.create("t", b"", ST_A, encrypted=True, compression=CompressionAlgorithm.GZIP)
    assert token.deleted and token.compression_algo is None
    data = decode(token.tokendata)
    assert data.get_bytes("servicedata") == b""
    assert "compressionalgo" not in data
    parsed = ServiceToken.parse(wire(token), {"": ST_A})
    assert parsed.verified and parsed.deleted and parsed.data == b""


# -- crypto context selection ------------------------------------------------------------------


def test_select_crypto_context() -> None:
    contexts = {"name": ST_A, "": ST_B}
    assert select_crypto_context("name", contexts) is ST_A
    assert select_crypto_context("other", contexts) is ST_B
    assert select_crypto_context("other", {"name": ST_A}) is None
    assert select_crypto_context("name", {}) is None
    assert select_crypto_context("", {"": ST_B}) is ST_B


def test_exact_name_wins_over_default() -> None:
    token = ServiceToken.create("name", DATA, ST_A)
    parsed = ServiceToken.parse(wire(token), {"name": ST_A, "": ST_B})
    assert parsed.verified and parsed.data == DATA
    # With the contexts swapped the exact match has the wrong keys: unverified.
    parsed = ServiceToken.parse(wire(token), {"name": ST_B, "": ST_A})
    assert not parsed.verified and parsed.data is None


def test_default_context_used() -> None:
    token = ServiceToken.create("anything", DATA, ST_B)
    parsed = ServiceToken.parse(wire(token), {"name": ST_A, "": ST_B})
    assert parsed.verified and parsed.data == DATA


@pytest.mark.parametrize("contexts", [{}, {"name": ST_A}, {"": ST_B}])
def test_no_usable_context_is_unverified(contexts: dict[str, Any]) -> None:
    token = ServiceToken.create("t", DATA, ST_A, master_token=MT)
    parsed = ServiceToken.parse(wire(token), contexts, MT)
    assert not parsed.verified and parsed.data is None and not parsed.decrypted and not parsed.deleted
    assert parsed.name == "t" and parsed.encrypted and parsed.mt_serial_number == 42
    assert parsed.tokendata == token.tokendata and parsed.signature == token.signature


def test_unencrypted_but_unverified_data_is_unavailable() -> None:
    token = ServiceToken.create("t", DATA, ST_A, encrypted=False)
    assert ServiceToken.parse(wire(token), {"": ST_B}).data is None


def test_tampered_signature_unverified() -> None:
    token = ServiceToken.create("t", DATA, ST_A)
    bad = bytes([token.signature[0] ^ 1]) + token.signature[1:]
    parsed = ServiceToken.parse(decode(encode({"tokendata": token.tokendata, "signature": bad})), {"": ST_A})
    assert not parsed.verified and parsed.data is None


def test_decryption_failure_is_an_error() -> None:
    obj = signed(tokendata(encrypted=True, servicedata=b"not an envelope"))
    assert parse_error(obj) is MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR


# -- parse failures ---------------------------------------------------------------------------------


def test_empty_tokendata_is_missing() -> None:
    obj = decode(encode({"tokendata": b"", "signature": b""}))
    assert parse_error(obj) is MslError.SERVICETOKEN_TOKENDATA_MISSING


@pytest.mark.parametrize(
    "outer",
    [
        {},
        {"signature": "AAAA"},
        {"tokendata": "eyJ9"},
        {"tokendata": 3, "signature": ""},
        {"tokendata": "eyJ9", "signature": 3},
    ],
)
def test_outer_parse_errors(outer: dict[str, Any]) -> None:
    assert parse_error(MslObject(outer)) is MslError.MSL_PARSE_ERROR


@pytest.mark.parametrize("td", [b"not json", b"[]", b"{", b'{"name": "a", "name": "b"}'])
def test_tokendata_not_an_object(td: bytes) -> None:
    assert parse_error(signed(td)) is MslError.MSL_PARSE_ERROR


@pytest.mark.parametrize(
    "fields",
    [
        {"name": None},
        {"encrypted": None},
        {"servicedata": None},
        {"name": 5},
        {"encrypted": "false"},
        {"encrypted": 0},
        {"servicedata": "not base64!"},
        {"mtserialnumber": "42"},
        {"uitserialnumber": True},
    ],
)
def test_missing_or_mistyped_fields(fields: dict[str, Any]) -> None:
    assert parse_error(signed(tokendata(**fields))) is MslError.MSL_PARSE_ERROR


@pytest.mark.parametrize("value", [-1, MAX_LONG_VALUE + 1])
def test_master_token_serial_out_of_range(value: int) -> None:
    obj = signed(tokendata(mtserialnumber=value))
    assert parse_error(obj) is MslError.SERVICETOKEN_MASTERTOKEN_SERIAL_NUMBER_OUT_OF_RANGE


@pytest.mark.parametrize("value", [-1, MAX_LONG_VALUE + 1])
def test_user_id_token_serial_out_of_range(value: int) -> None:
    obj = signed(tokendata(uitserialnumber=value))
    assert parse_error(obj) is MslError.SERVICETOKEN_USERIDTOKEN_SERIAL_NUMBER_OUT_OF_RANGE


def test_serial_bounds_accepted() -> None:
    mt = MasterToken(
        renewal_window=1,
        expiration=2,
        sequence_number=0,
        serial_number=MAX_LONG_VALUE,
        tokendata=b"",
        signature=b"",
        verified=False,
    )
    uit = UserIdToken(
        renewal_window=1,
        expiration=2,
        mt_serial_number=MAX_LONG_VALUE,
        serial_number=0,
        tokendata=b"",
        signature=b"",
        verified=False,
    )
    parsed = ServiceToken.parse(
        signed(tokendata(mtserialnumber=MAX_LONG_VALUE, uitserialnumber=0)), {"": ST_A}, mt, uit
    )
    assert (parsed.mt_serial_number, parsed.uit_serial_number) == (MAX_LONG_VALUE, 0)


# -- binding checks -------------------------------------------------------------------------------


def test_master_token_mismatch() -> None:
    token = ServiceToken.create("t", DATA, ST_A, master_token=MT)
    assert parse_error(wire(token), mt=None) is MslError.SERVICETOKEN_MASTERTOKEN_MISMATCH
    with pytest.raises(MslException) as exc:
        ServiceToken.parse(wire(token), {"": ST_A}, MT2)
    assert exc.value.error is MslError.SERVICETOKEN_MASTERTOKEN_MISMATCH
    assert exc.value.master_token is MT2
    # Also when the token cannot be verified.
    assert parse_error(wire(token), {}, mt=MT2) is MslError.SERVICETOKEN_MASTERTOKEN_MISMATCH


def test_user_id_token_mismatch() -> None:
    token = ServiceToken.create("t", DATA, ST_A, master_token=MT, user_id_token=UIT)
    assert parse_error(wire(token), mt=MT, uit=None) is MslError.SERVICETOKEN_USERIDTOKEN_MISMATCH
    with pytest.raises(MslException) as exc:
        ServiceToken.parse(wire(token), {"": ST_A}, MT, UIT2)
    assert exc.value.error is MslError.SERVICETOKEN_USERIDTOKEN_MISMATCH
    assert exc.value.user_id_token is UIT2


def test_master_token_mismatch_checked_first() -> None:
    token = ServiceToken.create("t", DATA, ST_A, master_token=MT, user_id_token=UIT)
    assert parse_error(wire(token), mt=None, uit=None) is MslError.SERVICETOKEN_MASTERTOKEN_MISMATCH


def test_unbound_token_accepts_any_tokens() -> None:
    token = ServiceToken.create("t", DATA, ST_A)
    for mt, uit in [(None, None), (MT, None), (MT, UIT), (MT2, UIT_ON_MT2)]:
        assert ServiceToken.parse(wire(token), {"": ST_A}, mt, uit).data == DATA


# -- identity --------------------------------------------------------------------------------------


def test_equality_by_name_and_binding() -> None:
    unbound = ServiceToken.create("t", DATA, ST_A)
    mt_bound = ServiceToken.create("t", DATA, ST_A, master_token=MT)
    uit_bound = ServiceToken.create("t", DATA, ST_A, master_token=MT, user_id_token=UIT)
    assert unbound == ServiceToken.create("t", b"other data", ST_B, encrypted=False)
    assert len({unbound, mt_bound, uit_bound}) == 3
    assert mt_bound != ServiceToken.create("t", DATA, ST_A, master_token=MT2)
    assert unbound != ServiceToken.create("u", DATA, ST_A)
    assert unbound != "t"
    assert uit_bound.key == ("t", 42, 77)
    assert unbound.key == ("t", None, None)

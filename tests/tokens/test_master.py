"""MasterToken: creation, parsing, every parse failure, time checks and ordering (tokens.md §1)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from missile.clock import FixedClock
from missile.crypto.envelopes import encode_v1
from missile.crypto.null import ClientMslCryptoContext, NullCryptoContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MAX_LONG_VALUE, MslObject, b64encode, decode, encode
from missile.errors import MslCryptoException, MslError, MslException
from missile.tokens import MasterToken

MSL_KE = bytes(range(16))
MSL_KH = bytes(range(32, 64))
MSL_KW = bytes(range(100, 116))
MSL = SymmetricCryptoContext("msl", MSL_KE, MSL_KH, MSL_KW)
OTHER = SymmetricCryptoContext("other", bytes(range(1, 17)), bytes(range(2, 34)))

SESSION_KE = bytes(range(200, 216))
SESSION_KH = bytes(range(64, 96))

RENEWAL_MS = 1_700_000_000_500
EXPIRATION_MS = 1_700_086_400_999


def create(**overrides: Any) -> MasterToken:
    kwargs: dict[str, Any] = {
        "renewal_window_ms": RENEWAL_MS,
        "expiration_ms": EXPIRATION_MS,
        "sequence_number": 7,
        "serial_number": 42,
        "identity": "device-1",
        "encryption_key": SESSION_KE,
        "signature_key": SESSION_KH,
        "issuer_data": {"tier": "gold", "n": 3},
    }
    kwargs.update(overrides)
    return MasterToken.create(MSL, **kwargs)


def wire(token: MasterToken) -> MslObject:
    return decode(encode(token))


def session(**overrides: Any) -> dict[str, Any]:
    """Session data as Java writes it; a None override removes the key."""
    data: dict[str, Any] = {
        "identity": "device-1",
        "encryptionkey": SESSION_KE,
        "encryptionalgorithm": "AES",
        "hmackey": SESSION_KH,
        "signaturekey": SESSION_KH,
        "signaturealgorithm": "HmacSHA256",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


_DEFAULT: Any = object()


def tokendata(sessiondata: Any = _DEFAULT, **overrides: Any) -> bytes:
    """Hand-made token data; a None override removes the key."""
    fields: dict[str, Any] = {
        "renewalwindow": 1000,
        "expiration": 2000,
        "sequencenumber": 1,
        "serialnumber": 42,
        "sessiondata": MSL.encrypt(encode(session())) if sessiondata is _DEFAULT else sessiondata,
    }
    fields.update(overrides)
    return encode({k: v for k, v in fields.items() if v is not None})


def signed(td: bytes, crypto: SymmetricCryptoContext = MSL) -> MslObject:
    return decode(encode({"tokendata": td, "signature": crypto.sign(td)}))


def parse_error(obj: MslObject, crypto: Any = MSL) -> MslError:
    with pytest.raises(MslException) as exc:
        MasterToken.parse(obj, crypto)
    return exc.value.error


def with_session(plaintext: bytes) -> MslObject:
    return signed(tokendata(sessiondata=MSL.encrypt(plaintext)))


def session_error(**overrides: Any) -> MslError:
    return parse_error(with_session(encode(session(**overrides))))


# -- creation and round trip ----------------------------------------------------------


def test_create_is_verified_and_decrypted() -> None:
    token = create()
    assert token.verified and token.decrypted
    assert token.renewal_window == RENEWAL_MS // 1000
    assert token.expiration == EXPIRATION_MS // 1000
    assert (token.sequence_number, token.serial_number) == (7, 42)
    assert token.identity == "device-1"
    assert token.encryption_key == SESSION_KE and token.signature_key == SESSION_KH
    assert token.issuer_data == {"tier": "gold", "n": 3}
    assert MSL.verify(token.tokendata, token.signature)


def test_created_tokendata_and_sessiondata_layout() -> None:
    token = create()
    data = decode(token.tokendata)
    assert set(data.keys()) == {"renewalwindow", "expiration", "sequencenumber", "serialnumber", "sessiondata"}
    assert data.get_int("renewalwindow") == 1_700_000_000
    assert data.get_int("expiration") == 1_700_086_400
    sess = decode(MSL.decrypt(data.get_bytes("sessiondata")))
    # Both key names with the same bytes, and both algorithm names (tokens.md §1.2).
    assert sess.get_bytes("hmackey") == sess.get_bytes("signaturekey") == SESSION_KH
    assert sess.get_bytes("encryptionkey") == SESSION_KE
    assert sess.get_string("encryptionalgorithm") == "AES"
    assert sess.get_string("signaturealgorithm") == "HmacSHA256"
    assert sess.get_string("identity") == "device-1"
    assert sess.get_object("issuerdata").to_dict() == {"tier": "gold", "n": 3}


def test_create_without_issuer_data_omits_it() -> None:
    token = create(issuer_data=None)
    sess = decode(MSL.decrypt(decode(token.tokendata).get_bytes("sessiondata")))
    assert "issuerdata" not in sess
    parsed = MasterToken.parse(wire(token), MSL)
    assert parsed.issuer_data is None


def test_round_trip() -> None:
    token = create()
    parsed = MasterToken.parse(wire(token), MSL)
    assert parsed.verified and parsed.decrypted
    assert parsed == token
    assert parsed.identity == "device-1"
    assert parsed.encryption_key == SESSION_KE
    assert parsed.signature_key == SESSION_KH
    assert parsed.encryption_algorithm == "AES"
    assert parsed.signature_algorithm == "HmacSHA256"
    assert parsed.issuer_data == {"tier": "gold", "n": 3}
    assert (parsed.renewal_window, parsed.expiration) == (token.renewal_window, token.expiration)
    assert (parsed.sequence_number, parsed.serial_number) == (7, 42)


def test_round_trip_aes_cmac() -> None:
    token = create(signature_algorithm="AESCmac", signature_key=bytes(16))
    parsed = MasterToken.parse(wire(token), MSL)
    assert parsed.signature_algorithm == "AESCmac"
    assert parsed.signature_key == bytes(16)


def test_reencoding_reproduces_exact_bytes() -> None:
    token = create()
    outer = encode(token)
    parsed = MasterToken.parse(decode(outer), MSL)
    assert parsed.tokendata == token.tokendata
    assert parsed.signature == token.signature
    assert encode(parsed) == outer
    nested = decode(encode({"mastertoken": parsed})).get_object("mastertoken")
    assert nested.get_bytes("tokendata") == token.tokendata
    assert nested.get_bytes("signature") == token.signature


def test_reencoding_keeps_unusual_tokendata_bytes() -> None:
    # Token data with whitespace and another key order is re-sent verbatim, never re-serialised.
    td = (
        b'{ "sessiondata" : "' + b64encode(MSL.encrypt(encode(session()))).encode() + b'",\n'
        b' "serialnumber": 42, "sequencenumber": 1, "expiration": 2000, "renewalwindow": 1000 }'
    )
    obj = signed(td)
    for crypto in (MSL, OTHER):
        parsed = MasterToken.parse(obj, crypto)
        assert parsed.tokendata == td
        assert parsed.to_msl() == {"tokendata": td, "signature": MSL.sign(td)}
    assert MasterToken.parse(obj, MSL).decrypted


def test_repr_contains_no_key_material() -> None:
    token = create()
    text = repr(token)
    assert "device-1" in text and "42" in text
    for key in (SESSION_KE, SESSION_KH):
        assert key.hex() not in text
        assert repr(key) not in text
        assert b64encode(key) not in text
    assert "encryption_key" not in text and "signature_key" not in text


# -- verification -----------------------------------------------------------------------


def test_wrong_msl_keys_give_unverified_token() -> None:
    parsed = MasterToken.parse(wire(create()), OTHER)
    assert not parsed.verified and not parsed.decrypted
    assert parsed.identity is None
    assert parsed.encryption_key is None and parsed.signature_key is None
    assert parsed.issuer_data is None
    # The public token data is still read.
    assert (parsed.sequence_number, parsed.serial_number) == (7, 42)
    assert parsed == create()


def test_client_context_never_verifies() -> None:
    parsed = MasterToken.parse(wire(create()), ClientMslCryptoContext())
    assert not parsed.verified and not parsed.decrypted
    assert parsed.identity is None


def test_tampered_signature_is_unverified() -> None:
    token = create()
    bad = bytes([token.signature[0] ^ 1]) + token.signature[1:]
    parsed = MasterToken.parse(decode(encode({"tokendata": token.tokendata, "signature": bad})), MSL)
    assert not parsed.verified and parsed.identity is None


def test_tampered_tokendata_value_is_unverified() -> None:
    token = create()
    td = token.tokendata.replace(b'"sequencenumber":7', b'"sequencenumber":8')
    assert td != token.tokendata
    parsed = MasterToken.parse(decode(encode({"tokendata": td, "signature": token.signature})), MSL)
    assert not parsed.verified and not parsed.decrypted
    assert parsed.sequence_number == 8


def test_every_single_byte_tamper_is_unverified_or_a_token_error() -> None:
    token = create()
    allowed = {
        MslError.MASTERTOKEN_TOKENDATA_PARSE_ERROR,
        MslError.MASTERTOKEN_EXPIRES_BEFORE_RENEWAL,
        MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_RANGE,
        MslError.MASTERTOKEN_SERIAL_NUMBER_OUT_OF_RANGE,
        MslError.MASTERTOKEN_SESSIONDATA_MISSING,
    }
    for i in range(len(token.tokendata)):
        td = bytearray(token.tokendata)
        td[i] ^= 0x01
        obj = decode(encode({"tokendata": bytes(td), "signature": token.signature}))
        try:
            parsed = MasterToken.parse(obj, MSL)
        except MslException as exc:
            assert exc.error in allowed, (i, exc)
        else:
            assert not parsed.verified and not parsed.decrypted, i


# -- outer object -------------------------------------------------------------------------


def test_empty_tokendata_is_tokendata_missing() -> None:
    obj = decode(encode({"tokendata": b"", "signature": b"sig"}))
    assert parse_error(obj) is MslError.MASTERTOKEN_TOKENDATA_MISSING


@pytest.mark.parametrize(
    "outer",
    [
        {"signature": "AAAA"},
        {"tokendata": "eyJ9"},
        {},
        {"tokendata": 5, "signature": "AAAA"},
        {"tokendata": "eyJ9", "signature": 5},
        {"tokendata": "not base64!", "signature": "AAAA"},
        {"tokendata": {"renewalwindow": 1}, "signature": "AAAA"},
    ],
)
def test_missing_or_mistyped_outer_keys_are_parse_errors(outer: dict[str, Any]) -> None:
    assert parse_error(MslObject(outer)) is MslError.MSL_PARSE_ERROR


# -- token data -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "td",
    [
        b"not json",
        b"[1, 2]",
        b"{",
        b'{"renewalwindow": 1, "renewalwindow": 1}',
        b"\xff\xfe",
    ],
)
def test_tokendata_not_a_json_object(td: bytes) -> None:
    assert parse_error(signed(td)) is MslError.MASTERTOKEN_TOKENDATA_PARSE_ERROR


@pytest.mark.parametrize("key", ["renewalwindow", "expiration", "sequencenumber", "serialnumber", "sessiondata"])
def test_tokendata_missing_field(key: str) -> None:
    assert parse_error(signed(tokendata(**{key: None}))) is MslError.MASTERTOKEN_TOKENDATA_PARSE_ERROR


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("renewalwindow", "1000"),
        ("expiration", True),
        ("sequencenumber", [1]),
        ("serialnumber", {"a": 1}),
        ("sessiondata", "not base64!"),
        ("sessiondata", 12),
    ],
)
def test_tokendata_wrong_types(key: str, value: Any) -> None:
    assert parse_error(signed(tokendata(**{key: value}))) is MslError.MASTERTOKEN_TOKENDATA_PARSE_ERROR


def test_tokendata_parse_error_even_when_unverified() -> None:
    assert parse_error(signed(b"not json"), OTHER) is MslError.MASTERTOKEN_TOKENDATA_PARSE_ERROR


def test_expires_before_renewal_on_create() -> None:
    with pytest.raises(MslException) as exc:
        create(renewal_window_ms=2_000_000, expiration_ms=1_999_999)
    assert exc.value.error is MslError.MASTERTOKEN_EXPIRES_BEFORE_RENEWAL
    # Equal is fine.
    assert create(renewal_window_ms=2_000_000, expiration_ms=2_000_000).expiration == 2000


def test_expires_before_renewal_on_parse() -> None:
    obj = signed(tokendata(renewalwindow=2000, expiration=1999))
    assert parse_error(obj) is MslError.MASTERTOKEN_EXPIRES_BEFORE_RENEWAL
    assert parse_error(obj, OTHER) is MslError.MASTERTOKEN_EXPIRES_BEFORE_RENEWAL
    parsed = MasterToken.parse(signed(tokendata(renewalwindow=2000, expiration=2000)), MSL)
    assert parsed.renewal_window == parsed.expiration == 2000


@pytest.mark.parametrize(
    ("field", "error"),
    [
        ("sequencenumber", MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_RANGE),
        ("serialnumber", MslError.MASTERTOKEN_SERIAL_NUMBER_OUT_OF_RANGE),
    ],
)
@pytest.mark.parametrize("value", [-1, MAX_LONG_VALUE + 1, -(2**63), 2**63])
def test_numbers_out_of_range_on_parse(field: str, value: int, error: MslError) -> None:
    assert parse_error(signed(tokendata(**{field: value}))) is error


@pytest.mark.parametrize("value", [0, MAX_LONG_VALUE])
def test_number_range_bounds_accepted_on_parse(value: int) -> None:
    parsed = MasterToken.parse(signed(tokendata(sequencenumber=value, serialnumber=value)), MSL)
    assert parsed.sequence_number == parsed.serial_number == value
    assert parsed.decrypted


@pytest.mark.parametrize(
    ("field", "error"),
    [
        ("sequence_number", MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_RANGE),
        ("serial_number", MslError.MASTERTOKEN_SERIAL_NUMBER_OUT_OF_RANGE),
    ],
)
@pytest.mark.parametrize("value", [-1, MAX_LONG_VALUE + 1])
def test_numbers_out_of_range_on_create(field: str, value: int, error: MslError) -> None:
    with pytest.raises(MslException) as exc:
        create(**{field: value})
    assert exc.value.error is error


def test_number_range_bounds_accepted_on_create() -> None:
    token = create(sequence_number=MAX_LONG_VALUE, serial_number=0)
    parsed = MasterToken.parse(wire(token), MSL)
    assert (parsed.sequence_number, parsed.serial_number) == (MAX_LONG_VALUE, 0)


def test_create_unknown_signature_algorithm() -> None:
    with pytest.raises(MslCryptoException) as exc:
        create(signature_algorithm="HmacSHA1")
    assert exc.value.error is MslError.UNIDENTIFIED_ALGORITHM


def test_float_times_are_truncated() -> None:
    td = tokendata().replace(b'"renewalwindow":1000', b'"renewalwindow":1000.9')
    td = td.replace(b'"expiration":2000', b'"expiration":2000.2')
    assert b"1000.9" in td and b"2000.2" in td
    parsed = MasterToken.parse(signed(td), MSL)
    assert (parsed.renewal_window, parsed.expiration) == (1000, 2000)


# -- session data ---------------------------------------------------------------------------


def test_empty_sessiondata_is_missing() -> None:
    obj = signed(tokendata(sessiondata=b""))
    assert parse_error(obj) is MslError.MASTERTOKEN_SESSIONDATA_MISSING
    # Checked on the token data, so even without the keys.
    assert parse_error(obj, OTHER) is MslError.MASTERTOKEN_SESSIONDATA_MISSING


@pytest.mark.parametrize("plaintext", [b"not json", b"[1]", b"", b'{"identity": null}'])
def test_session_data_not_an_object(plaintext: bytes) -> None:
    assert parse_error(with_session(plaintext)) is MslError.MASTERTOKEN_SESSIONDATA_PARSE_ERROR


@pytest.mark.parametrize(
    "overrides",
    [
        {"identity": None},
        {"identity": 5},
        {"encryptionkey": None},
        {"encryptionkey": "not base64!"},
        {"signaturekey": None, "hmackey": None},
        {"signaturekey": 17},
        {"signaturekey": None, "hmackey": True},
        {"issuerdata": "text"},
        {"issuerdata": [1, 2]},
    ],
)
def test_session_data_field_errors(overrides: dict[str, Any]) -> None:
    assert session_error(**overrides) is MslError.MASTERTOKEN_SESSIONDATA_PARSE_ERROR


def test_session_data_is_not_opened_when_unverified() -> None:
    # Garbage session data does not matter when the token cannot be verified.
    obj = decode(encode({"tokendata": tokendata(sessiondata=b"garbage"), "signature": b"x" * 32}))
    parsed = MasterToken.parse(obj, MSL)
    assert not parsed.verified and not parsed.decrypted


@pytest.mark.parametrize(
    "overrides",
    [
        {"encryptionalgorithm": "DES"},
        {"encryptionalgorithm": "aes"},
        {"signaturealgorithm": "HmacSHA1"},
        {"signaturealgorithm": "hmacsha256"},
        {"signaturealgorithm": ""},
    ],
)
def test_unknown_algorithms(overrides: dict[str, Any]) -> None:
    assert session_error(**overrides) is MslError.UNIDENTIFIED_ALGORITHM


def test_mistyped_algorithm_names_fall_back_to_defaults() -> None:
    obj = with_session(encode(session(encryptionalgorithm=5, signaturealgorithm=["AESCmac"])))
    parsed = MasterToken.parse(obj, MSL)
    assert parsed.decrypted
    assert parsed.encryption_algorithm == "AES"
    assert parsed.signature_algorithm == "HmacSHA256"


def test_absent_algorithm_names_default() -> None:
    parsed = MasterToken.parse(with_session(encode(session(encryptionalgorithm=None, signaturealgorithm=None))), MSL)
    assert (parsed.encryption_algorithm, parsed.signature_algorithm) == ("AES", "HmacSHA256")


def test_signaturekey_absent_uses_hmackey() -> None:
    hmac_only = bytes(range(90, 122))
    parsed = MasterToken.parse(with_session(encode(session(signaturekey=None, hmackey=hmac_only))), MSL)
    assert parsed.signature_key == hmac_only


def test_signaturekey_preferred_over_hmackey() -> None:
    parsed = MasterToken.parse(with_session(encode(session(hmackey=bytes(32)))), MSL)
    assert parsed.signature_key == SESSION_KH


def test_issuer_data_parsed() -> None:
    parsed = MasterToken.parse(with_session(encode(session(issuerdata={"a": [1, "x"], "b": {"c": True}}))), MSL)
    assert parsed.issuer_data == {"a": [1, "x"], "b": {"c": True}}


@pytest.mark.parametrize(
    "overrides",
    [
        {"encryptionkey": bytes(15)},
        {"encryptionkey": bytes(17)},
        {"encryptionkey": b""},
        {"signaturekey": b""},
        {"signaturealgorithm": "AESCmac", "signaturekey": bytes(32 + 1)},
        {"signaturealgorithm": "AESCmac", "signaturekey": bytes(15)},
    ],
)
def test_bad_key_lengths(overrides: dict[str, Any]) -> None:
    assert session_error(**overrides) is MslError.MASTERTOKEN_KEY_CREATION_ERROR


@pytest.mark.parametrize("length", [16, 24, 32])
def test_aes_key_lengths_accepted(length: int) -> None:
    parsed = MasterToken.parse(with_session(encode(session(encryptionkey=bytes(length)))), MSL)
    assert parsed.encryption_key == bytes(length)


def test_sessiondata_bad_padding_is_the_crypto_error() -> None:
    # One block that decrypts (IV = 0) to sixteen zero bytes: last byte 0 is invalid PKCS#5.
    encryptor = Cipher(algorithms.AES(MSL_KE), modes.ECB()).encryptor()
    block = encryptor.update(bytes(16)) + encryptor.finalize()
    obj = signed(tokendata(sessiondata=encode_v1("msl", bytes(16), block)))
    with pytest.raises(MslCryptoException) as exc:
        MasterToken.parse(obj, MSL)
    assert exc.value.error is MslError.CIPHERTEXT_BAD_PADDING


def test_sessiondata_not_an_envelope_is_the_crypto_error() -> None:
    with pytest.raises(MslCryptoException) as exc:
        MasterToken.parse(signed(tokendata(sessiondata=b"garbage")), MSL)
    assert exc.value.error is MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR


def test_sessiondata_under_other_encryption_key_signed_with_msl_key() -> None:
    foreign = SymmetricCryptoContext("x", bytes(range(50, 66)), MSL_KH)
    obj = signed(tokendata(sessiondata=foreign.encrypt(encode(session()))))
    with pytest.raises(MslException):
        MasterToken.parse(obj, MSL)


def test_null_context_treats_plaintext_session_data() -> None:
    # A Null MSL context verifies anything and decrypts by pass-through.
    td = tokendata(sessiondata=encode(session()))
    parsed = MasterToken.parse(decode(encode({"tokendata": td, "signature": b""})), NullCryptoContext())
    assert parsed.verified and parsed.identity == "device-1"


# -- time checks (tokens.md §1.5) -------------------------------------------------------------


def test_is_renewable_and_expired_with_explicit_now() -> None:
    token = create(renewal_window_ms=1_000_000, expiration_ms=2_000_000)
    assert not token.is_renewable(999_999)
    assert token.is_renewable(1_000_000)
    assert not token.is_expired(1_999_999)
    assert token.is_expired(2_000_000)
    # Explicit now wins over the verified flag.
    unverified = MasterToken.parse(wire(token), OTHER)
    assert not unverified.is_renewable(999_999)
    assert unverified.is_renewable(1_000_000)
    assert not unverified.is_expired(1_999_999)
    assert unverified.is_expired(2_000_000)


def test_seconds_truncation_affects_checks() -> None:
    token = create(renewal_window_ms=1_000_999, expiration_ms=2_000_999)
    assert token.is_renewable(1_000_000)
    assert token.is_expired(2_000_000)


def test_verified_token_uses_its_clock() -> None:
    clock = FixedClock(999_999)
    token = create(renewal_window_ms=1_000_000, expiration_ms=2_000_000, clock=clock)
    assert not token.is_renewable() and not token.is_expired()
    clock.now_ms = 1_000_000
    assert token.is_renewable() and not token.is_expired()
    clock.now_ms = 2_000_000
    assert token.is_renewable() and token.is_expired()


def test_parsed_verified_token_uses_parse_clock() -> None:
    clock = FixedClock(0)
    parsed = MasterToken.parse(wire(create(renewal_window_ms=1_000_000, expiration_ms=2_000_000)), MSL, clock=clock)
    assert not parsed.is_renewable() and not parsed.is_expired()
    clock.advance(2_000_000)
    assert parsed.is_renewable() and parsed.is_expired()


def test_unverified_without_now_is_renewable_and_not_expired() -> None:
    clock = FixedClock(10**15)  # far after expiration
    parsed = MasterToken.parse(wire(create(renewal_window_ms=1_000_000, expiration_ms=2_000_000)), OTHER, clock=clock)
    assert parsed.is_renewable()
    assert not parsed.is_expired()
    clock.now_ms = 0  # far before the renewal window
    assert parsed.is_renewable()
    assert not parsed.is_expired()


# -- ordering (tokens.md §1.6) -----------------------------------------------------------------


def mt(seq: int, expiration: int = 2000, serial: int = 1) -> MasterToken:
    return MasterToken(
        renewal_window=1000,
        expiration=expiration,
        sequence_number=seq,
        serial_number=serial,
        tokendata=b"",
        signature=b"",
        verified=False,
    )


def test_newer_by_sequence_number() -> None:
    assert mt(2).is_newer_than(mt(1))
    assert not mt(1).is_newer_than(mt(2))


def test_equal_sequence_expiration_decides() -> None:
    assert mt(5, expiration=3000).is_newer_than(mt(5, expiration=2000))
    assert not mt(5, expiration=2000).is_newer_than(mt(5, expiration=3000))
    assert not mt(5).is_newer_than(mt(5))


def test_serial_numbers_are_ignored() -> None:
    assert mt(2, serial=1).is_newer_than(mt(1, serial=999))
    assert not mt(1, serial=999).is_newer_than(mt(2, serial=1))


def test_wraparound_max_vs_zero() -> None:
    assert mt(0).is_newer_than(mt(MAX_LONG_VALUE))
    assert not mt(MAX_LONG_VALUE).is_newer_than(mt(0))


@pytest.mark.parametrize(
    ("a", "b", "a_newer"),
    [
        # Gap of exactly 2^53 - 127: still ordinary ordering.
        (MAX_LONG_VALUE - 127, 0, True),
        (0, MAX_LONG_VALUE - 127, False),
        # Gap of 2^53 - 126: wrapped, the small number is newer.
        (MAX_LONG_VALUE - 126, 0, False),
        (0, MAX_LONG_VALUE - 126, True),
        (MAX_LONG_VALUE, 126, False),
        (126, MAX_LONG_VALUE, True),
        (MAX_LONG_VALUE, 127, True),
        (127, MAX_LONG_VALUE, False),
        (MAX_LONG_VALUE - 1, MAX_LONG_VALUE, False),
        (MAX_LONG_VALUE, MAX_LONG_VALUE - 1, True),
        (1, 0, True),
        (0, 1, False),
    ],
)
def test_wraparound_boundaries(a: int, b: int, a_newer: bool) -> None:
    assert mt(a).is_newer_than(mt(b)) is a_newer


def test_newer_is_antisymmetric_for_distinct_sequences() -> None:
    for a, b in [(0, 1), (5, MAX_LONG_VALUE), (MAX_LONG_VALUE - 127, 0), (MAX_LONG_VALUE - 126, 0), (10, 2**52)]:
        assert mt(a).is_newer_than(mt(b)) != mt(b).is_newer_than(mt(a)), (a, b)


# -- equality --------------------------------------------------------------------------------


def test_equality_and_hash_by_serial_sequence_expiration() -> None:
    a = mt(3, expiration=2000, serial=9)
    assert a == mt(3, expiration=2000, serial=9)
    assert hash(a) == hash(mt(3, expiration=2000, serial=9))
    assert a != mt(4, expiration=2000, serial=9)
    assert a != mt(3, expiration=2001, serial=9)
    assert a != mt(3, expiration=2000, serial=10)
    assert a != "not a token"
    assert len({a, mt(3, expiration=2000, serial=9), mt(3, expiration=2000, serial=10)}) == 2
    assert a.key == (9, 3, 2000)


def test_equality_ignores_verification_and_keys() -> None:
    token = create()
    unverified = MasterToken.parse(wire(token), OTHER)
    assert token == unverified and hash(token) == hash(unverified)
    assert {token: "x"}[unverified] == "x"

"""Tests for missile.errors: the MslError table, response codes and exception context."""

from __future__ import annotations

import pytest

from missile.errors import (
    MslCryptoException,
    MslEncodingException,
    MslEntityAuthException,
    MslError,
    MslException,
    MslInternalException,
    MslKeyExchangeException,
    MslMasterTokenException,
    MslMessageException,
    MslUserAuthException,
    MslUserIdTokenException,
    ResponseCode,
)

MAX_ID = 2**53

# ---------------------------------------------------------------------------
# ResponseCode (errors.md §2)
# ---------------------------------------------------------------------------

EXPECTED_RESPONSE_CODES = {
    "FAIL": 1,
    "TRANSIENT_FAILURE": 2,
    "ENTITY_REAUTH": 3,
    "USER_REAUTH": 4,
    "KEYX_REQUIRED": 5,
    "ENTITYDATA_REAUTH": 6,
    "USERDATA_REAUTH": 7,
    "EXPIRED": 8,
    "REPLAYED": 9,
    "SSOTOKEN_REJECTED": 10,
}


def test_response_codes_are_exactly_the_ten_of_the_spec() -> None:
    assert {rc.name: rc.value for rc in ResponseCode} == EXPECTED_RESPONSE_CODES
    assert len(ResponseCode) == 10


@pytest.mark.parametrize(("name", "value"), sorted(EXPECTED_RESPONSE_CODES.items()))
def test_response_code_from_wire_known(name: str, value: int) -> None:
    rc = ResponseCode.from_wire(value)
    assert rc is ResponseCode[name]
    assert int(rc) == value


@pytest.mark.parametrize("value", [0, -1, 11, 12, 100, 2**31 - 1, -(2**31), 100000])
def test_response_code_from_wire_unknown_is_fail(value: int) -> None:
    assert ResponseCode.from_wire(value) is ResponseCode.FAIL


def test_response_code_is_int_compatible() -> None:
    assert ResponseCode.REPLAYED == 9
    assert ResponseCode.SSOTOKEN_REJECTED + 0 == 10


# ---------------------------------------------------------------------------
# MslError table (errors.md §5)
# ---------------------------------------------------------------------------


def test_every_internal_code_is_100000_plus_code() -> None:
    for e in MslError:
        assert isinstance(e.code, int)
        assert e.internal_code == 100000 + e.code, e.name


def test_codes_are_unique_and_non_negative() -> None:
    codes = [e.code for e in MslError]
    assert len(codes) == len(set(codes))
    assert all(c >= 0 for c in codes)
    internal = [e.internal_code for e in MslError]
    assert len(internal) == len(set(internal))


def test_every_error_has_response_code_and_message() -> None:
    for e in MslError:
        assert isinstance(e.response_code, ResponseCode), e.name
        assert isinstance(e.message, str) and e.message, e.name


def test_table_size_matches_java_reference() -> None:
    # errors.md §5 lists 222 Java errors (the two JavaScript-only ones are excluded).
    assert len(MslError) == 222
    names = {e.name for e in MslError}
    assert "USERIDTOKEN_IDENTITY_NOT_FOUND" not in names
    assert "USERIDTOKEN_PASSWORD_VERSION_CHANGED" not in names


# (name, code, response code) spot checks hard-coded from errors.md §5.
SPOT_CHECKS = [
    ("MSL_PARSE_ERROR", 0, ResponseCode.FAIL),
    ("MSL_ENCODE_ERROR", 1, ResponseCode.FAIL),
    ("INSUFFICIENT_CIPHERTEXT", 20, ResponseCode.FAIL),
    ("INVALID_SYMMETRIC_KEY", 24, ResponseCode.FAIL),
    ("INVALID_CIPHERTEXT", 65, ResponseCode.FAIL),
    ("MASTERTOKEN_UNTRUSTED", 1000, ResponseCode.ENTITY_REAUTH),
    ("MASTERTOKEN_REJECTED_BY_APP", 1014, ResponseCode.ENTITY_REAUTH),
    ("MASTERTOKEN_ISSUERDATA_ENCODE_ERROR", 1015, ResponseCode.FAIL),
    ("USERIDTOKEN_MASTERTOKEN_MISMATCH", 2000, ResponseCode.USER_REAUTH),
    ("RESERVED_2012", 2012, ResponseCode.USER_REAUTH),
    ("USERIDTOKEN_REJECTED_BY_APP", 2020, ResponseCode.USERDATA_REAUTH),
    ("SERVICETOKEN_TOKENDATA_MISSING", 3009, ResponseCode.FAIL),
    ("X509CERT_PARSE_ERROR", 4002, ResponseCode.ENTITYDATA_REAUTH),
    ("ENTITY_REJECTED_BY_APP", 4026, ResponseCode.ENTITYDATA_REAUTH),
    ("ENTITYAUTH_MASTERTOKEN_NOT_DECRYPTED", 4032, ResponseCode.FAIL),
    ("ECC_PRIVATEKEY_NOT_FOUND", 4038, ResponseCode.ENTITYDATA_REAUTH),
    ("USER_REJECTED_BY_APP", 5037, ResponseCode.USERDATA_REAUTH),
    ("USERIDTOKEN_IDENTITY_NOT_ASSOCIATED_WITH_ENTITY", 5040, ResponseCode.USERDATA_REAUTH),
    ("MESSAGE_DATA_MISSING", 6007, ResponseCode.FAIL),
    ("MESSAGE_EXPIRED", 6014, ResponseCode.EXPIRED),
    ("INTERNAL_CODE_NEGATIVE", 6016, ResponseCode.FAIL),
    ("RESPONSE_REQUIRES_ENCRYPTION", 6018, ResponseCode.KEYX_REQUIRED),
    ("MESSAGE_REPLAYED", 6021, ResponseCode.REPLAYED),
    ("RESPONSE_REQUIRES_MASTERTOKEN", 6027, ResponseCode.KEYX_REQUIRED),
    ("RESPONSE_REQUIRES_USERIDTOKEN", 6028, ResponseCode.USER_REAUTH),
    ("RESPONSE_REQUIRES_INTEGRITY_PROTECTION", 6035, ResponseCode.KEYX_REQUIRED),
    ("MESSAGE_ENTITYDATABASED_VERIFICATION_FAILED", 6038, ResponseCode.ENTITYDATA_REAUTH),
    ("MESSAGE_MASTERTOKENBASED_VERIFICATION_FAILED", 6039, ResponseCode.ENTITY_REAUTH),
    ("MESSAGE_REPLAYED_UNRECOVERABLE", 6040, ResponseCode.ENTITY_REAUTH),
    ("MESSAGE_EXPIRED_NO_KEYREQUEST_DATA", 6045, ResponseCode.EXPIRED),
    ("UNIDENTIFIED_KEYX_SCHEME", 7000, ResponseCode.FAIL),
    ("KEYX_IDENTITY_NOT_FOUND", 7023, ResponseCode.FAIL),
    ("INTERNAL_EXCEPTION", 9000, ResponseCode.TRANSIENT_FAILURE),
    ("MSL_COMMS_FAILURE", 9001, ResponseCode.FAIL),
    ("NONE", 9999, ResponseCode.FAIL),
]


@pytest.mark.parametrize(("name", "code", "rc"), SPOT_CHECKS, ids=[s[0] for s in SPOT_CHECKS])
def test_table_spot_checks(name: str, code: int, rc: ResponseCode) -> None:
    e = MslError[name]
    assert e.code == code
    assert e.internal_code == 100000 + code
    assert e.response_code is rc
    assert MslError.from_internal_code(100000 + code) is e


@pytest.mark.parametrize("missing", [22, 23, 49, 50, 2013, 2014, 4008, 4024, 4027, 5000, 5006, 9002])
def test_gaps_in_the_table_are_not_defined(missing: int) -> None:
    assert MslError.from_internal_code(100000 + missing) is None


def test_from_internal_code_round_trips_every_error() -> None:
    for e in MslError:
        assert MslError.from_internal_code(e.internal_code) is e


@pytest.mark.parametrize("value", [0, 1, 6021, -100000, 99999, 200000, 109998])
def test_from_internal_code_unknown(value: int) -> None:
    # A plain code (without the 100000 offset) is not an internal code.
    assert MslError.from_internal_code(value) is None


# ---------------------------------------------------------------------------
# Exceptions
# ---------------------------------------------------------------------------


def test_exception_str_contains_name_code_and_detail() -> None:
    exc = MslException(MslError.MESSAGE_REPLAYED, "nonreplayable id 7")
    text = str(exc)
    assert "MESSAGE_REPLAYED" in text
    assert "106021" in text
    assert "nonreplayable id 7" in text
    assert exc.error is MslError.MESSAGE_REPLAYED
    assert exc.detail == "nonreplayable id 7"
    assert exc.response_code is ResponseCode.REPLAYED


def test_exception_without_detail() -> None:
    exc = MslEncodingException(MslError.MSL_PARSE_ERROR)
    assert exc.detail is None
    assert "MSL_PARSE_ERROR" in str(exc)
    assert "100000" in str(exc)
    assert exc.response_code is ResponseCode.FAIL


def test_exception_cause_is_chained() -> None:
    root = ValueError("boom")
    exc = MslCryptoException(MslError.DECRYPT_ERROR, cause=root)
    assert exc.__cause__ is root


@pytest.mark.parametrize(
    "cls",
    [
        MslEncodingException,
        MslCryptoException,
        MslMasterTokenException,
        MslUserIdTokenException,
        MslEntityAuthException,
        MslUserAuthException,
        MslKeyExchangeException,
        MslMessageException,
    ],
)
def test_subclasses_are_msl_exceptions(cls: type[MslException]) -> None:
    exc = cls(MslError.NONE, "x")
    assert isinstance(exc, MslException)
    assert isinstance(exc, Exception)
    assert exc.error is MslError.NONE
    with pytest.raises(MslException):
        raise exc


def test_internal_exception_uses_internal_exception_error() -> None:
    exc = MslInternalException("oops")
    assert exc.error is MslError.INTERNAL_EXCEPTION
    assert exc.response_code is ResponseCode.TRANSIENT_FAILURE
    assert "109000" in str(exc)
    assert "oops" in str(exc)


def test_context_defaults_are_none() -> None:
    exc = MslException(MslError.NONE)
    assert exc.master_token is None
    assert exc.entity_auth_data is None
    assert exc.user_id_token is None
    assert exc.user_auth_data is None
    assert exc.message_id is None


def test_set_master_token_first_one_wins_and_chains() -> None:
    exc = MslException(MslError.NONE)
    assert exc.set_master_token("mt1") is exc
    exc.set_master_token("mt2")
    assert exc.master_token == "mt1"


def test_master_token_and_entity_auth_data_are_exclusive() -> None:
    exc = MslException(MslError.NONE).set_master_token("mt")
    exc.set_entity_auth_data("ead")
    assert exc.master_token == "mt"
    assert exc.entity_auth_data is None

    exc2 = MslException(MslError.NONE).set_entity_auth_data("ead1")
    exc2.set_entity_auth_data("ead2")
    exc2.set_master_token("mt")
    assert exc2.entity_auth_data == "ead1"
    assert exc2.master_token is None


def test_user_id_token_and_user_auth_data_are_exclusive() -> None:
    exc = MslException(MslError.NONE).set_user_id_token("uit1")
    exc.set_user_id_token("uit2")
    exc.set_user_auth_data("uad")
    assert exc.user_id_token == "uit1"
    assert exc.user_auth_data is None

    exc2 = MslException(MslError.NONE).set_user_auth_data("uad1")
    exc2.set_user_auth_data("uad2")
    exc2.set_user_id_token("uit")
    assert exc2.user_auth_data == "uad1"
    assert exc2.user_id_token is None


def test_entity_and_user_context_are_independent() -> None:
    exc = MslException(MslError.NONE).set_master_token("mt").set_user_auth_data("uad")
    assert exc.master_token == "mt"
    assert exc.user_auth_data == "uad"


def test_setting_none_does_not_block_a_later_value() -> None:
    exc = MslException(MslError.NONE).set_master_token(None)
    exc.set_master_token("mt")
    assert exc.master_token == "mt"


def test_set_message_id_first_one_wins() -> None:
    exc = MslException(MslError.NONE)
    assert exc.set_message_id(5) is exc
    exc.set_message_id(6)
    assert exc.message_id == 5


@pytest.mark.parametrize("mid", [0, 1, MAX_ID - 1, MAX_ID])
def test_set_message_id_in_range(mid: int) -> None:
    assert MslException(MslError.NONE).set_message_id(mid).message_id == mid


@pytest.mark.parametrize("mid", [-1, MAX_ID + 1, -(2**63), 2**64])
def test_set_message_id_out_of_range(mid: int) -> None:
    exc = MslException(MslError.NONE)
    with pytest.raises(ValueError):
        exc.set_message_id(mid)
    assert exc.message_id is None


def test_set_message_id_out_of_range_rejected_even_after_a_value() -> None:
    exc = MslException(MslError.NONE).set_message_id(3)
    with pytest.raises(ValueError):
        exc.set_message_id(-1)
    assert exc.message_id == 3

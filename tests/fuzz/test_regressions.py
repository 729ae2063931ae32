"""Inputs the fuzz targets (fuzz/targets.py) once failed on, kept as regression tests.

Each finding is checked twice: through its fuzz target (any non-MSL exception fails the
test) and directly against the API that was fixed, with the MSL error it must raise.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

from missile.encoding import MslObject, b64encode, decode
from missile.entityauth.x509 import X509EntityAuthData
from missile.errors import MslCryptoException, MslEncodingException, MslError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))

import targets


def _run(target: str, data: bytes) -> None:
    targets.TARGETS[target].run(data)


# -- codec: integers longer than int() converts (4300 digits) -----------------------------
# decode's fast path for large flat objects called int() on any run of digits; beyond
# Python's 4300-digit conversion limit that raised a bare ValueError.

_HUGE_INT = b'{"a":' + b"1" * 5000 + b"}"


def test_codec_huge_integer_is_a_parse_error() -> None:
    with pytest.raises(MslEncodingException) as info:
        decode(_HUGE_INT)
    assert info.value.error is MslError.MSL_PARSE_ERROR


def test_codec_long_integer_still_decodes() -> None:
    # 20 to 4300 digits leave the fast path but are still numbers, as JSON has them.
    assert decode(b'{"a":' + b"7" * 600 + b"}").to_dict()["a"] == int("7" * 600)
    assert decode(b'{"a":-' + b"9" * 19 + b',"b":"' + b"x" * 600 + b'"}').get_int("a") == -int("9" * 19)


@pytest.mark.parametrize(
    ("target", "data"),
    [
        ("codec_decode", _HUGE_INT),
        ("message", b"\x00\x00" + _HUGE_INT),
        ("master_token", b'{"tokendata":"' + b"A" * 600 + b'","signature":' + b"1" * 4400 + b"}"),
    ],
)
def test_codec_huge_integer_targets(target: str, data: bytes) -> None:
    _run(target, data)


# -- X509 entity auth: cryptography's parse failures --------------------------------------
# X509EntityAuthData.parse caught only ValueError and read only the subject: a bad version
# (InvalidVersion) or a BIT STRING attribute of another OID (TypeError) escaped, and a
# certificate whose issuer name or public key was malformed passed as parsed, so the
# trust check, or the factory's public_key(), raised a bare ValueError later; a
# well-formed key of a type cryptography does not know raised UnsupportedAlgorithm.
# Now: X509CERT_PARSE_ERROR at parse time for all of those, INVALID_PUBLIC_KEY from the
# factory for an unsupported key type.

# x509_certificate: the harness CA certificate with invalid UTF-8 in its issuer name.
_CERT_BAD_ISSUER = base64.b64decode(
    "MIICxTCCAa2gAwIBAgIBATANBgkqhkiG9w0BAQsFADAaMRgwFgYDVQQDDA9taXMAAALJIGZ1enogQ0EwHhcNMjQwMTAxMDAw"
    "MDAwWhcNMzMxMjI5MDAwMDAwWjAaMRgwFgYDVQQDDA9taXNzaWxlIGZ1enogQ0EwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAw"
    "ggEKAoIBAQDh96iuP8VZCLwCFu+MrcYvfVy3o34B3/cXCo2xri8Cx8+aKUtHHQNaGTFHJx62ZAQBr7VMfI0LOhsh25ATdRjw"
    "2106LLVLcG0cOiJI0QhMU8CzSXY4BnZlS/Qoiv2wtYDOeVcxyUs4Fe0s5AwKzZ4TLgw7Wb24vLDBzZK4B+hl77CMQhq7KhAr"
    "8zmaIDR9toSfgf7eblqI/ctvVflKzhvi267QQ2w795uAzHaW1nhv12TMDrkMzpfEQLrSMrUBb7/C8Vvj6I9CqsDuZ2JlaynO"
    "oxFNoBQMcomjYsUFzo3T/C5OxdzMfHpNjPlvaGsjo347sQS7GKsBpT7FTtcSq/Z1AgMBAAGjFjAUMBIGA1UdEwEB/wQIMAYB"
    "Af8CAQEwDQYJKoZIhvcNAQELBQADggEBALCw9F0hw5qklOVfU3ZdffD65mZYDQLXe3tugEbpdLxyb8CSlLK4Dz296cnDy3in"
    "fhHb3pp1TyvIVRKO0ED8Ckeuw6gS9NdG89JuBc8ZCiB59wmb+dnP3dz4Fq3MZVbvEIMZWJK1S0eCpJOkv/XNT/VO6ttGPI6F"
    "lOz2pU7xCDh9ihmQDuCi/UxnaHOoMhDCqE0VfNJlsW4HFjR5o5Q1gm4QgZOKGBb0DIs+8QK1RnQ+oYYs/9jbwnwYg3oBylt9"
    "0NmErbrlR1pKz3p/aq15iD05WzA1L0Yb2g+pf8ctZVPmzgS7+c5osDdvRrPXcsl2FiGWpHPwvux06E68+f7jH38="
)
# x509_tbs: a TBSCertificate (signed by the harness CA) whose key is not valid DER.
_TBS_BAD_KEY = base64.b64decode(
    "MIIBraADAgECAgEBMA0GCSqGSIb3DQEBCwUAMBoxGDAWBgNVBAMMD21pc3NpbGUgZnV6eiBDQTAeFw0yNDAxMDEwMDAwMDBa"
    "Fw0zMzEyMjkwMDAwMDBaMBoxGDAWBgNVBAMMD21pc3NpbGUgZnV6eiBDQTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoC"
    "ggEBAOH3qK4/xVkIvAIW74ytxi99XLejfgHf9xcKjbGuLwLHz5opS0cdA1oZMUcnHrZkBAGvtUx8jQs6GyHbkBN1GPDbXTos"
    "tUtwbRw6IkjRCExTwLNJdjgGdmVL9CiK/bC1gM55VzHJSzgV7SzkDArNnhMuDDtZvbi8sMHNkrgH6GXvsIxCGrsqECvzOZog"
    "NH22hJ+B/t5uWoj9y29V+UrOG+LbrtBDbDv3m4DMdpbWEBAQEBAQEBAQEBAQEBAQEBAAAAAAABAQEBAQEBAQEBAQEBAQEBAQ"
    "EBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQABAQEBAwggGFMCcehaADAgGgAwIAAaMWMBQwEgYDVR0TAQH/BAgwBgEB/wIB"
    "AQ=="
)

# x509_certificate: a subject attribute (OID 2.5.4.218) holding a BIT STRING, which
# cryptography allows only for X500UniqueIdentifier (TypeError when the name is decoded).
_CERT_BIT_STRING_ATTRIBUTE = base64.b64decode(
    "MIICnTCCAYWgAwIBAgIBZTANBgkqhkiG9w0BAQsFADAaMRgwFgYDVQQDDA9taXNzaWxlIGZ1enogQ0EwHhcNMjQwMTAxMDAw"
    "MDAwWhcNMjcxMjMxMDAwMDAwWjB2MSUwDgYDVQQKDAdtaXNzaWxlMBMGA1UEAwwMIysgYSwgYjs8Yz4gMRQwEgYKCZImiZPy"
    "LGQBAQwEdWlkMTEPMA0GA1UEQR4GAGIAbQBwMRkwFwYDVQQFHBAAAAB1AAAAbgAAAGkAAAB2MQswCQYDVdotAwIAATCBnzAN"
    "BgkqhkiG9w0BAQEFAAOBjQAwgYkCgYEAtJD4k88ArylMpAwrDqtxYZiQhBAqFIiG8QswnmDeW2wRzmZm/F4/OPoNjGHUI8fh"
    "AvpEA68rFijY66aIstV0QXSbOM1Pfky/NP9k2uI8dSRfs7Lziqw4bGTI0lZNaEBv8sbo/c9WJOoX9oevLE8aC4gVVqFb8SWT"
    "kJsSC4gZkXkCAwEAAaMWMBQwEgYDVR0TAQH/BAgwBgEB/wIBADANBgkqhkiG9w0BAQsFAAOCAQEAHGNdLPukcQ2wPyyYcK6P"
    "bsp6wDn9krgYWupP0xP9Za480itNwowqq8JZ1sW/t5cCeNO1guq1kEMIQ1lkpX/udxyxaGEJOicumzGLgnCDfg9Jl/GNh0cG"
    "zzWVfBPz8Ob/RE2T7xvHksY/tKm4nO0/PO6swSctTiBnxDGZC8H5x2XUQ9fXC0R02vngIdk6CRNuf5EZbdHm7h9ubD33rZ/r"
    "OEByykXWIEhVQjENZGl8v7nsdURekij9mDyTZUKgIEtDZgU89GuGOwivoHGfR0CSozkSWMtBldimULzrjh7VAVCyGfhDI6T7"
    "WAzGseIm1bv8aIRIBk7xrKK1CLldpJXZZg=="
)
# x509_tbs: a TBSCertificate with version 42 (x509.InvalidVersion).
_TBS_BAD_VERSION = base64.b64decode(
    "MIH3oAMCASoCAWcwDQYJKoZIhvcNAQELBQAwGjEYMBYGA1UEAwwPbWlzc2lsZSBmdXokIENBMB4XDTI0MDEwMTAwMDAwMFoX"
    "DTI3MTIzMTAwMDAwMFowdjElMA4GA1UECgwHbWlzc2lsZTATBgNVBAMMDCMrIGEsIGI7PGM+IDEUMBIGCgmSJomT8ixkAQEM"
    "BHVpZDExDzANBgNVBEEeBgBiAG0AcDEZMBcGA1UEBRwQAAAAdQAAAG4AAABpAAAAdjELMAkGA1UELQMCAAEwKjAFBgMrZXAD"
    "IQAl1tYqrnVicpM7hMz4/GTE2su7U32UjqAs64GsqiXwbg=="
)


def _x509_parse(der: bytes) -> X509EntityAuthData:
    ctx = targets.case(targets.MESSAGE_STEMS[0]).ctx
    return X509EntityAuthData.parse(MslObject({"x509certificate": b64encode(der)}), ctx)


@pytest.mark.parametrize(
    ("target", "data"),
    [
        ("x509_certificate", _CERT_BAD_ISSUER),
        ("x509_certificate", _CERT_BIT_STRING_ATTRIBUTE),
        ("x509_tbs", _TBS_BAD_KEY),
        ("x509_tbs", _TBS_BAD_VERSION),
    ],
)
def test_x509_parse_failures_targets(target: str, data: bytes) -> None:
    _run(target, data)


@pytest.mark.parametrize(
    "der",
    [
        _CERT_BAD_ISSUER,
        _CERT_BIT_STRING_ATTRIBUTE,
        targets.signed_by_test_ca(_TBS_BAD_KEY),
        targets.signed_by_test_ca(_TBS_BAD_VERSION),
    ],
    ids=["malformed-issuer", "bit-string-attribute", "malformed-public-key", "bad-version"],
)
def test_x509_malformed_certificate_is_a_parse_error(der: bytes) -> None:
    with pytest.raises(MslCryptoException) as info:
        _x509_parse(der)
    assert info.value.error is MslError.X509CERT_PARSE_ERROR


def test_x509_unknown_key_type_is_an_invalid_public_key() -> None:
    # A CA-signed certificate whose key algorithm is an unknown OID (1.2.840.113549.1.1.126).
    leaf = targets.x509_leaves()[2]  # an RSA key, valid at the vectors' time
    rsa_encryption = bytes.fromhex("2a864886f70d010101")
    tbs = leaf.tbs_certificate_bytes.replace(rsa_encryption, bytes.fromhex("2a864886f70d01017e"))
    data = _x509_parse(targets.signed_by_test_ca(tbs))
    factory = targets.x509_test_ca()[2]
    with pytest.raises(MslCryptoException) as info:
        factory.crypto_context(targets.case(targets.MESSAGE_STEMS[0]).ctx, data)
    assert info.value.error is MslError.INVALID_PUBLIC_KEY

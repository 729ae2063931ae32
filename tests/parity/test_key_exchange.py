"""Key exchange failure cases the reference probes (KeyRequestDataTest,
KeyResponseDataTest and the five *ExchangeSuite classes) beyond tests/keyx: every
required key request and key response field missing or mistyped, for every scheme;
the generic key request/response envelope; renewal with a master token the responder
did not issue; and request/response data handed to the wrong factory."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from keyx import DH_ID, DH_SPEC, StubEntityAuth, over_the_wire_request, requester, responder
from missile.context import MslContext
from missile.encoding import MslObject, decode, encode
from missile.errors import MslError, MslInternalException
from missile.keyx import (
    AsymmetricWrappedRequest,
    DiffieHellmanRequest,
    JweLadderRequest,
    JwkLadderRequest,
    KeyRequestData,
    KeyResponseData,
    SymmetricWrappedRequest,
    parse_key_request_data,
    parse_key_response_data,
)
from missile.tokens.master import MasterToken

from ._helpers import raises, reconfigured

SCHEMES = ["ASYMMETRIC_WRAPPED", "SYMMETRIC_WRAPPED", "DIFFIE_HELLMAN", "JWE_LADDER", "JWK_LADDER"]

REQUEST_FIELDS = {
    "ASYMMETRIC_WRAPPED": ["keypairid", "mechanism", "publickey"],
    "SYMMETRIC_WRAPPED": ["keyid"],
    "DIFFIE_HELLMAN": ["parametersid", "publickey"],
    "JWE_LADDER": ["mechanism"],
    "JWK_LADDER": ["mechanism"],
}
RESPONSE_FIELDS = {
    "ASYMMETRIC_WRAPPED": ["keypairid", "encryptionkey", "hmackey"],
    "SYMMETRIC_WRAPPED": ["keyid", "encryptionkey", "hmackey"],
    "DIFFIE_HELLMAN": ["parametersid", "publickey"],
    "JWE_LADDER": ["wrapkey", "wrapdata", "encryptionkey", "hmackey"],
    "JWK_LADDER": ["wrapkey", "wrapdata", "encryptionkey", "hmackey"],
}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _request(scheme: str, key: rsa.RSAPrivateKey) -> KeyRequestData:
    if scheme == "ASYMMETRIC_WRAPPED":
        return AsymmetricWrappedRequest("kp1", "JWE_RSA", key.public_key(), key)
    if scheme == "SYMMETRIC_WRAPPED":
        return SymmetricWrappedRequest("PSK")
    if scheme == "DIFFIE_HELLMAN":
        return DiffieHellmanRequest.generate(DH_ID, DH_SPEC)
    if scheme == "JWE_LADDER":
        return JweLadderRequest("PSK")
    return JwkLadderRequest("PSK")


def _response(server: MslContext, request: KeyRequestData) -> KeyResponseData:
    factory = server.key_exchange_factory(request.scheme)
    assert factory is not None
    received = over_the_wire_request(request, server)
    return factory.generate_response(server, received, entity_auth_data=StubEntityAuth()).response


def _wire(obj: Any) -> dict[str, Any]:
    value: dict[str, Any] = decode(encode(obj)).to_dict()
    return value


# -- scheme key data --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, True], ids=["missing", "mistyped"])
@pytest.mark.parametrize(
    ("scheme", "field"), [(s, f) for s in SCHEMES for f in REQUEST_FIELDS[s]], ids=lambda x: str(x)
)
def test_request_keydata_field(rsa_key: rsa.RSAPrivateKey, scheme: str, field: str, value: Any) -> None:
    """missingKeypairId, missingMechanism, missingPublicKey, missingKeyId,
    missingParametersId, ... (request data of each scheme)."""
    server = responder()
    obj = _wire(_request(scheme, rsa_key).to_msl())
    if value is None:
        del obj["keydata"][field]
    else:
        obj["keydata"][field] = value
    raises(MslError.MSL_PARSE_ERROR, parse_key_request_data, MslObject(obj), server)


@pytest.mark.parametrize("value", [None, True], ids=["missing", "mistyped"])
@pytest.mark.parametrize(
    ("scheme", "field"), [(s, f) for s in SCHEMES for f in RESPONSE_FIELDS[s]], ids=lambda x: str(x)
)
def test_response_keydata_field(rsa_key: rsa.RSAPrivateKey, scheme: str, field: str, value: Any) -> None:
    """missingKeyPairId, missingEncryptionKey, missingHmacKey, missingWrapKey,
    missingWrapdata, missingParametersId, missingPublicKey (response data of each scheme)."""
    server, client = responder(), requester()
    obj = _wire(_response(server, _request(scheme, rsa_key)).to_msl())
    if value is None:
        del obj["keydata"][field]
    else:
        obj["keydata"][field] = value
    raises(MslError.MSL_PARSE_ERROR, parse_key_response_data, MslObject(obj), client)


def test_dh_response_invalid_public_key() -> None:
    """DiffieHellmanExchangeSuite.invalidPublicKey (response): an empty public value is
    refused when parsed; a degenerate one (0) when the requester derives the keys."""
    server, client = responder(), requester()
    request = DiffieHellmanRequest.generate(DH_ID, DH_SPEC)
    obj = _wire(_response(server, request).to_msl())
    obj["keydata"]["publickey"] = ""
    raises(MslError.KEYX_INVALID_PUBLIC_KEY, parse_key_response_data, MslObject(obj), client)
    obj["keydata"]["publickey"] = "AAAA"
    response = parse_key_response_data(MslObject(obj), client)
    factory = client.key_exchange_factory("DIFFIE_HELLMAN")
    assert factory is not None
    raises(MslError.KEYX_INVALID_PUBLIC_KEY, factory.crypto_context, client, request, response, None)


# -- the generic envelope -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [{"scheme": None}, {"keydata": None}, {"keydata": "x"}, {"scheme": 5}],
    ids=["noScheme", "noKeydata", "keydata-not-object", "scheme-mistyped"],
)
def test_key_request_data_envelope(changes: dict[str, Any]) -> None:
    """KeyRequestDataTest: noScheme / noKeydata."""
    obj = _wire(SymmetricWrappedRequest("PSK").to_msl())
    for key, value in changes.items():
        if value is None:
            del obj[key]
        else:
            obj[key] = value
    raises(MslError.MSL_PARSE_ERROR, parse_key_request_data, MslObject(obj), responder())


@pytest.mark.parametrize(
    "changes",
    [{"mastertoken": None}, {"scheme": None}, {"keydata": None}, {"mastertoken": "x"}, {"mastertoken": {"a": 1}}],
    ids=["noMasterToken", "noScheme", "noKeydata", "invalidMasterToken", "mastertoken-without-fields"],
)
def test_key_response_data_envelope(changes: dict[str, Any]) -> None:
    """KeyResponseDataTest: noMasterToken / noScheme / noKeydata / invalidMasterToken."""
    server, client = responder(), requester()
    obj = _wire(_response(server, SymmetricWrappedRequest("PSK")).to_msl())
    for key, value in changes.items():
        if value is None:
            del obj[key]
        else:
            obj[key] = value
    raises(MslError.MSL_PARSE_ERROR, parse_key_response_data, MslObject(obj), client)


def test_key_response_data_scheme_errors() -> None:
    """KeyResponseDataTest: unidentifiedScheme / keyxFactoryNotFound."""
    server, client = responder(), requester()
    obj = _wire(_response(server, SymmetricWrappedRequest("PSK")).to_msl())
    raises(MslError.UNIDENTIFIED_KEYX_SCHEME, parse_key_response_data, MslObject({**obj, "scheme": "NOPE"}), client)
    factories = [f for f in client.key_exchange_factories if f.scheme != "SYMMETRIC_WRAPPED"]
    client = reconfigured(client, key_exchange_factories=factories)
    raises(MslError.KEYX_FACTORY_NOT_FOUND, parse_key_response_data, MslObject(obj), client)


# -- responder and requester misuse ---------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_renewal_with_untrusted_master_token(rsa_key: rsa.RSAPrivateKey, scheme: str) -> None:
    """untrustedMasterTokenSubsequentResponse, for every scheme: the responder renews only
    master tokens it can verify."""
    server = responder()
    request = _request(scheme, rsa_key)
    issued = _response(server, request).master_token
    opaque = MasterToken.parse(decode(encode(issued)), requester().msl_crypto)
    assert not opaque.verified
    factory = server.key_exchange_factory(scheme)
    assert factory is not None
    exc = raises(
        MslError.MASTERTOKEN_UNTRUSTED,
        factory.generate_response,
        server,
        over_the_wire_request(request, server),
        master_token=opaque,
    )
    assert exc.master_token == opaque


@pytest.mark.parametrize("scheme", SCHEMES)
def test_request_of_another_scheme(rsa_key: rsa.RSAPrivateKey, scheme: str) -> None:
    """wrongRequestInitialResponse / wrongRequestSubsequentResponse: a responder factory
    handed request data of another scheme."""
    server = responder()
    other = _request("SYMMETRIC_WRAPPED" if scheme != "SYMMETRIC_WRAPPED" else "DIFFIE_HELLMAN", rsa_key)
    factory = server.key_exchange_factory(scheme)
    assert factory is not None
    with pytest.raises(MslInternalException):
        factory.generate_response(server, other, entity_auth_data=StubEntityAuth())


@pytest.mark.parametrize("scheme", SCHEMES)
def test_response_of_another_scheme(rsa_key: rsa.RSAPrivateKey, scheme: str) -> None:
    """wrongRequestCryptoContext / wrongResponseCryptoContext: the reference raises an
    internal error; a response comes from the wire, so missile reports the mismatch."""
    server, client = responder(), requester()
    other_scheme = "SYMMETRIC_WRAPPED" if scheme != "SYMMETRIC_WRAPPED" else "DIFFIE_HELLMAN"
    request = _request(scheme, rsa_key)
    foreign = _response(server, _request(other_scheme, rsa_key))
    factory = client.key_exchange_factory(scheme)
    assert factory is not None
    raises(MslError.KEYX_RESPONSE_REQUEST_MISMATCH, factory.crypto_context, client, request, foreign, None)
    own = _response(server, request)
    raises(
        MslError.KEYX_RESPONSE_REQUEST_MISMATCH,
        factory.crypto_context,
        client,
        _request(other_scheme, rsa_key),
        own,
        None,
    )

"""ASYMMETRIC_WRAPPED (keyx.md §2)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from missile.authutils import ConfigurableAuthenticationUtils
from missile.crypto import SymmetricCryptoContext
from missile.crypto.asymmetric import RsaWrapMode, RsaWrappingCryptoContext
from missile.encoding import MslObject, b64url_decode, b64url_encode, decode, encode
from missile.errors import MslCryptoException, MslError, MslException, MslKeyExchangeException, MslMasterTokenException
from missile.keyx import (
    AsymmetricWrappedExchange,
    AsymmetricWrappedMechanism,
    AsymmetricWrappedRequest,
    AsymmetricWrappedResponse,
)
from missile.tokens.master import MasterToken

from . import CLIENT, StubEntityAuth, over_the_wire_request, over_the_wire_response, requester, responder, run_exchange

RSA_MECHANISMS = ["RSA", "JWE_RSA", "JWEJS_RSA", "JWK_RSA", "JWK_RSAES"]


@pytest.fixture(scope="module")
def key_pair() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _request(key: rsa.RSAPrivateKey, mechanism: str, key_pair_id: str = "kp1") -> AsymmetricWrappedRequest:
    return AsymmetricWrappedRequest(key_pair_id, mechanism, key.public_key(), key)


@pytest.mark.parametrize("mechanism", RSA_MECHANISMS)
def test_round_trip_create_and_renew(key_pair: rsa.RSAPrivateKey, mechanism: str) -> None:
    server, client = responder(), requester()
    request = _request(key_pair, mechanism)
    first = run_exchange(server, client, request)
    assert first.issued.sequence_number == 0
    assert first.session.key_id == f"{CLIENT}_0"  # type: ignore[attr-defined]
    # Renewal with the (verified) master token keeps the serial number, bumps the sequence.
    second = run_exchange(server, client, request, master_token=first.issued)
    assert second.issued.serial_number == first.issued.serial_number
    assert second.issued.sequence_number == 1
    assert second.session.key_id == f"{CLIENT}_1"  # type: ignore[attr-defined]
    assert second.issued.encryption_key != first.issued.encryption_key


def test_generate_request() -> None:
    request = AsymmetricWrappedRequest.generate("RSA", "eph", key_size=1024)
    assert request.private_key is not None and request.mechanism is AsymmetricWrappedMechanism.RSA
    assert run_exchange(responder(), requester(), request).issued.identity == CLIENT
    with pytest.raises(MslKeyExchangeException) as info:
        AsymmetricWrappedRequest.generate("ECC", "eph")
    assert info.value.error is MslError.UNSUPPORTED_KEYX_MECHANISM


def _unwrapped_jwks(key: rsa.RSAPrivateKey, mechanism: str) -> tuple[dict[str, object], dict[str, object]]:
    server = responder()
    request = _request(key, mechanism)
    result = AsymmetricWrappedExchange().generate_response(
        server, over_the_wire_request(request, server), entity_auth_data=StubEntityAuth()
    )
    response = result.response
    assert isinstance(response, AsymmetricWrappedResponse)
    if mechanism.startswith("JWK"):
        mode = RsaWrapMode.WRAP_UNWRAP_OAEP if mechanism == "JWK_RSA" else RsaWrapMode.WRAP_UNWRAP_PKCS1
        ctx = RsaWrappingCryptoContext("kp1", key, None, mode)
        enc, mac = ctx.unwrap(response.encryption_key), ctx.unwrap(response.hmac_key)
    else:
        from missile.crypto import JweCryptoContext, JweEncryption, JweFormat, RsaOaepCekContext

        fmt = JweFormat.JWE_CS if mechanism == "JWE_RSA" else JweFormat.JWE_JS
        jwe = JweCryptoContext(RsaOaepCekContext(key, None), JweEncryption.A128GCM, fmt)
        if fmt is JweFormat.JWE_CS:
            assert response.encryption_key.count(b".") == 4
        else:
            assert response.encryption_key[:1] == b"{"
        enc, mac = jwe.unwrap(response.encryption_key), jwe.unwrap(response.hmac_key)
    return json.loads(enc), json.loads(mac)


@pytest.mark.parametrize("mechanism", ["JWE_RSA", "JWEJS_RSA", "JWK_RSA", "JWK_RSAES"])
def test_jwk_members(key_pair: rsa.RSAPrivateKey, mechanism: str) -> None:
    """Exactly the JWKs of crypto.md §7 (key_ops compared as a set)."""
    enc, mac = _unwrapped_jwks(key_pair, mechanism)
    enc_k, mac_k = enc.pop("k"), mac.pop("k")
    assert isinstance(enc_k, str) and len(b64url_decode(enc_k)) == 16
    assert isinstance(mac_k, str) and len(b64url_decode(mac_k)) == 32
    if mechanism.startswith("JWK"):
        assert set(enc.pop("key_ops")) == {"encrypt", "decrypt"}  # type: ignore[call-overload]
        assert set(mac.pop("key_ops")) == {"sign", "verify"}  # type: ignore[call-overload]
        assert enc == {"kty": "oct", "alg": "A128CBC", "extractable": False}
        assert mac == {"kty": "oct", "alg": "HS256", "extractable": False}
    else:
        assert enc == {"kty": "oct", "use": "enc", "alg": "A128CBC", "extractable": False}
        assert mac == {"kty": "oct", "use": "sig", "alg": "HS256", "extractable": False}


def test_request_wire_form(key_pair: rsa.RSAPrivateKey) -> None:
    server = responder()
    request = _request(key_pair, "JWK_RSA", "pair-7")
    wire = json.loads(encode(request.to_msl()))
    assert wire["scheme"] == "ASYMMETRIC_WRAPPED"
    assert set(wire["keydata"]) == {"keypairid", "mechanism", "publickey"}
    received = over_the_wire_request(request, server)
    assert isinstance(received, AsymmetricWrappedRequest)
    assert received.private_key is None and received == request
    assert "present" in repr(request) and "absent" in repr(received)


def _keydata(**overrides: object) -> MslObject:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    base = json.loads(encode(_request(key, "RSA").keydata()))
    base.update(overrides)
    return MslObject(base)


def test_parse_errors() -> None:
    server = responder()
    with pytest.raises(MslKeyExchangeException) as info:
        AsymmetricWrappedRequest.parse(_keydata(mechanism="RSA_FOO"), server)
    assert info.value.error is MslError.UNIDENTIFIED_KEYX_MECHANISM
    with pytest.raises(MslCryptoException) as crypto_info:
        AsymmetricWrappedRequest.parse(_keydata(publickey="AAECAw=="), server)
    assert crypto_info.value.error is MslError.INVALID_PUBLIC_KEY
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_der = json.loads(encode(AsymmetricWrappedRequest("x", "ECC", ec_key.public_key()).keydata()))["publickey"]
    with pytest.raises(MslCryptoException) as crypto_info:  # an EC key for an RSA mechanism
        AsymmetricWrappedRequest.parse(_keydata(publickey=ec_der), server)
    assert crypto_info.value.error is MslError.INVALID_PUBLIC_KEY
    with pytest.raises(MslException) as any_info:
        AsymmetricWrappedRequest.parse(MslObject({"mechanism": "RSA"}), server)
    assert any_info.value.error is MslError.MSL_PARSE_ERROR


def test_ecc_is_unsupported() -> None:
    server = responder()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    request = AsymmetricWrappedRequest("ecc", "ECC", ec_key.public_key(), ec_key)
    received = over_the_wire_request(request, server)  # parses, like the reference
    with pytest.raises(MslKeyExchangeException) as info:
        AsymmetricWrappedExchange().generate_response(server, received, entity_auth_data=StubEntityAuth())
    assert info.value.error is MslError.UNSUPPORTED_KEYX_MECHANISM


def test_requester_errors(key_pair: rsa.RSAPrivateKey) -> None:
    server, client = responder(), requester()
    factory = AsymmetricWrappedExchange()
    request = _request(key_pair, "RSA", "kp1")
    result = factory.generate_response(
        server, over_the_wire_request(request, server), entity_auth_data=StubEntityAuth()
    )
    response = over_the_wire_response(result.response, client)
    assert isinstance(response, AsymmetricWrappedResponse)

    with pytest.raises(MslKeyExchangeException) as info:
        factory.crypto_context(client, _request(key_pair, "RSA", "other"), response, None)
    assert info.value.error is MslError.KEYX_RESPONSE_REQUEST_MISMATCH

    public_only = AsymmetricWrappedRequest("kp1", "RSA", key_pair.public_key())
    with pytest.raises(MslKeyExchangeException) as info:
        factory.crypto_context(client, public_only, response, None)
    assert info.value.error is MslError.KEYX_PRIVATE_KEY_MISSING

    tampered = AsymmetricWrappedResponse(
        response.master_token, "kp1", bytes([response.encryption_key[0] ^ 1]) + response.encryption_key[1:], b"x"
    )
    with pytest.raises(MslCryptoException) as crypto_info:
        factory.crypto_context(client, request, tampered, None)
    assert crypto_info.value.error in (MslError.CIPHERTEXT_BAD_PADDING, MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE)


def test_tampered_jwe_is_unwrap_error(key_pair: rsa.RSAPrivateKey) -> None:
    server, client = responder(), requester()
    factory = AsymmetricWrappedExchange()
    request = _request(key_pair, "JWEJS_RSA")
    result = factory.generate_response(
        server, over_the_wire_request(request, server), entity_auth_data=StubEntityAuth()
    )
    response = result.response
    assert isinstance(response, AsymmetricWrappedResponse)
    jwe = json.loads(response.encryption_key)
    ciphertext = bytearray(b64url_decode(jwe["ciphertext"]))
    ciphertext[0] ^= 1
    jwe["ciphertext"] = b64url_encode(bytes(ciphertext))
    tampered = AsymmetricWrappedResponse(response.master_token, "kp1", json.dumps(jwe).encode(), response.hmac_key)
    with pytest.raises(MslCryptoException) as info:
        factory.crypto_context(client, request, tampered, None)
    assert info.value.error is MslError.UNWRAP_ERROR


def test_not_a_jwk_is_session_key_creation_failure(key_pair: rsa.RSAPrivateKey) -> None:
    server, client = responder(), requester()
    request = _request(key_pair, "JWK_RSA")
    result = AsymmetricWrappedExchange().generate_response(
        server, over_the_wire_request(request, server), entity_auth_data=StubEntityAuth()
    )
    wrap = RsaWrappingCryptoContext("kp1", None, key_pair.public_key())
    bogus = AsymmetricWrappedResponse(
        result.response.master_token, "kp1", wrap.wrap(b"not json"), wrap.wrap(b'{"kty":"nope","k":"AA"}')
    )
    with pytest.raises(MslCryptoException) as info:
        AsymmetricWrappedExchange().crypto_context(client, request, bogus, None)
    assert info.value.error is MslError.SESSION_KEY_CREATION_FAILURE


def test_jwk_rsa_needs_more_than_1024_bits() -> None:
    """keyx.md §2 note: a 125-byte JWK does not fit RSA-1024 OAEP."""
    server = responder()
    request = AsymmetricWrappedRequest.generate("JWK_RSA", "small", key_size=1024)
    with pytest.raises(MslCryptoException) as info:
        AsymmetricWrappedExchange().generate_response(
            server, over_the_wire_request(request, server), entity_auth_data=StubEntityAuth()
        )
    assert info.value.error is MslError.PLAINTEXT_ILLEGAL_BLOCK_SIZE


def test_not_permitted_and_untrusted(key_pair: rsa.RSAPrivateKey) -> None:
    utils = ConfigurableAuthenticationUtils()
    utils.deny(CLIENT, "ASYMMETRIC_WRAPPED")
    server = responder(auth_utils=utils)
    request = over_the_wire_request(_request(key_pair, "RSA"), server)
    with pytest.raises(MslKeyExchangeException) as info:
        AsymmetricWrappedExchange().generate_response(server, request, entity_auth_data=StubEntityAuth())
    assert info.value.error is MslError.KEYX_INCORRECT_DATA

    trusted = responder()
    issued = run_exchange(trusted, requester(), _request(key_pair, "RSA")).issued
    with pytest.raises(MslKeyExchangeException) as info:  # renewal checks the token identity
        AsymmetricWrappedExchange().generate_response(server, request, master_token=issued)
    assert info.value.error is MslError.KEYX_INCORRECT_DATA
    # A token another network issued cannot be opened here: MASTERTOKEN_UNTRUSTED.
    foreign = MasterToken.parse(decode(encode(issued.to_msl())), SymmetricCryptoContext("x", bytes(16), bytes(32)))
    assert not foreign.verified
    with pytest.raises(MslMasterTokenException) as mt_info:
        AsymmetricWrappedExchange().generate_response(responder(), request, master_token=foreign)
    assert mt_info.value.error is MslError.MASTERTOKEN_UNTRUSTED

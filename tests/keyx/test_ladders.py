"""JWE_LADDER and JWK_LADDER (keyx.md §5, §6, §7)."""

from __future__ import annotations

import json

import pytest

from missile.authutils import ConfigurableAuthenticationUtils
from missile.crypto import AesKwJwkCryptoContext, JweCryptoContext
from missile.encoding import MslObject, b64encode, b64url_decode
from missile.errors import (
    MslCryptoException,
    MslEncodingException,
    MslEntityAuthException,
    MslError,
    MslKeyExchangeException,
)
from missile.keyx import (
    JweLadderExchange,
    JweLadderRequest,
    JwkLadderExchange,
    JwkLadderRequest,
    LadderExchange,
    LadderRequest,
    LadderResponse,
    jwe_ladder_key_context,
    jwk_ladder_key_context,
)
from missile.keyx.repository import InMemoryWrapCryptoContextRepository

from . import CLIENT, StubEntityAuth, over_the_wire_request, over_the_wire_response, psk_lookup, requester, responder
from . import run_exchange as _run

LADDERS = [
    pytest.param(JweLadderExchange, JweLadderRequest, id="JWE_LADDER"),
    pytest.param(JwkLadderExchange, JwkLadderRequest, id="JWK_LADDER"),
]


def _kpw_context(exchange: type[LadderExchange]) -> JweCryptoContext | AesKwJwkCryptoContext:
    kpw = psk_lookup().wrap_crypto_context(CLIENT)
    assert kpw is not None
    return jwe_ladder_key_context(kpw) if exchange is JweLadderExchange else jwk_ladder_key_context(kpw)


@pytest.mark.parametrize(("exchange", "request_cls"), LADDERS)
def test_ladder_psk_then_wrap_twice(exchange: type[LadderExchange], request_cls: type[LadderRequest]) -> None:
    server, client = responder(), requester()
    repo = client.wrap_repository
    assert isinstance(repo, InMemoryWrapCryptoContextRepository)
    first = _run(server, client, request_cls("PSK"))
    response = first.response
    assert isinstance(response, LadderResponse)
    assert repo.wrapdata() == [response.wrapdata]
    # wrapdata is the new wrapping key under the responder's MSL wrap key.
    assert len(response.wrapdata) == 24 and len(server.msl_crypto.unwrap(response.wrapdata)) == 16

    token, wrapdata = first.issued, response.wrapdata
    for sequence in (1, 2):
        step = _run(server, client, request_cls("WRAP", wrapdata), master_token=token)
        assert step.issued.serial_number == first.issued.serial_number
        assert step.issued.sequence_number == sequence
        new = step.response
        assert isinstance(new, LadderResponse)
        assert wrapdata not in repo and repo.wrapdata() == [new.wrapdata]
        token, wrapdata = step.issued, new.wrapdata


@pytest.mark.parametrize(("exchange", "request_cls"), LADDERS)
def test_jwk_members(exchange: type[LadderExchange], request_cls: type[LadderRequest]) -> None:
    """The wrapping and session key JWKs of crypto.md §7."""
    server = responder()
    result = exchange(psk_lookup()).generate_response(server, request_cls("PSK"), entity_auth_data=StubEntityAuth())
    response = result.response
    assert isinstance(response, LadderResponse)
    raw_wrap_jwk = _kpw_context(exchange).unwrap(response.wrap_key)
    wrap_jwk = json.loads(raw_wrap_jwk)
    w = b64url_decode(wrap_jwk.pop("k"))
    assert w == server.msl_crypto.unwrap(response.wrapdata)
    new_context = jwe_ladder_key_context(w) if exchange is JweLadderExchange else jwk_ladder_key_context(w)
    raw_enc = new_context.unwrap(response.encryption_key)
    enc, mac = json.loads(raw_enc), json.loads(new_context.unwrap(response.hmac_key))
    assert len(b64url_decode(enc.pop("k"))) == 16 and len(b64url_decode(mac.pop("k"))) == 32
    if exchange is JweLadderExchange:
        assert response.wrap_key[:1] == b"{" and "recipients" in json.loads(response.wrap_key)
        kid = wrap_jwk.pop("kid")
        assert -(2**63) <= int(kid) < 2**63 and str(int(kid)) == kid
        assert wrap_jwk == {"kty": "oct", "use": "wrap", "alg": "A128KW", "extractable": False}
        assert enc == {"kty": "oct", "use": "enc", "alg": "A128CBC", "extractable": False}
        assert mac == {"kty": "oct", "use": "sig", "alg": "HS256", "extractable": False}
    else:
        # Space padding right after '{' to a multiple of 8 bytes.
        assert len(raw_wrap_jwk) % 8 == 0 and len(raw_enc) % 8 == 0
        assert set(wrap_jwk.pop("key_ops")) == {"wrapKey", "unwrapKey"}
        assert wrap_jwk == {"kty": "oct", "alg": "A128KW", "extractable": False, "kid": "wrapKeyId"}
        assert set(enc.pop("key_ops")) == {"encrypt", "decrypt"}
        assert set(mac.pop("key_ops")) == {"sign", "verify"}
        assert enc == {"kty": "oct", "alg": "A128CBC", "extractable": False}
        assert mac == {"kty": "oct", "alg": "HS256", "extractable": False}


@pytest.mark.parametrize(("exchange", "request_cls"), LADDERS)
def test_request_parsing(exchange: type[LadderExchange], request_cls: type[LadderRequest]) -> None:
    server = responder()
    assert request_cls("PSK").keydata() == {"mechanism": "PSK"}
    wrap = request_cls("WRAP", b"\x01" * 24)
    assert over_the_wire_request(wrap, server) == wrap
    assert request_cls.parse(MslObject({"mechanism": "PSK", "wrapdata": "AQ=="}), server).wrapdata is None
    with pytest.raises(MslKeyExchangeException) as info:
        request_cls.parse(MslObject({"mechanism": "MGK"}), server)
    assert info.value.error is MslError.UNIDENTIFIED_KEYX_MECHANISM
    with pytest.raises(MslKeyExchangeException) as info:
        request_cls.parse(MslObject({"mechanism": "WRAP", "wrapdata": ""}), server)
    assert info.value.error is MslError.KEYX_WRAPPING_KEY_MISSING
    with pytest.raises(MslKeyExchangeException) as info:
        request_cls("WRAP")
    assert info.value.error is MslError.KEYX_WRAPPING_KEY_MISSING
    with pytest.raises(MslEncodingException) as enc_info:
        request_cls.parse(MslObject({"mechanism": "WRAP"}), server)
    assert enc_info.value.error is MslError.MSL_PARSE_ERROR
    response_cls = exchange.response_class
    with pytest.raises(MslEncodingException):
        response_cls.parse(MslObject({"wrapkey": "AQ==", "wrapdata": "AQ==", "encryptionkey": "AQ=="}), None, server)  # type: ignore[arg-type]


@pytest.mark.parametrize(("exchange", "request_cls"), LADDERS)
def test_wrap_errors(exchange: type[LadderExchange], request_cls: type[LadderRequest]) -> None:
    server, client = responder(), requester()
    first = _run(server, client, request_cls("PSK"))
    response = first.response
    assert isinstance(response, LadderResponse)
    factory = exchange(psk_lookup())
    # Responder: wrapdata not made by this network's MSL keys.
    forged = bytes(response.wrapdata[:-1]) + bytes([response.wrapdata[-1] ^ 1])
    with pytest.raises(MslCryptoException) as crypto_info:
        factory.generate_response(server, request_cls("WRAP", forged), master_token=first.issued)
    assert crypto_info.value.error is MslError.UNWRAP_ERROR
    # Requester: wrapdata unknown to the repository (or no repository at all).
    result = factory.generate_response(server, request_cls("WRAP", response.wrapdata), master_token=first.issued)
    renewed = over_the_wire_response(result.response, client)
    for ctx, request in (
        (client, request_cls("WRAP", b"\x07" * 24)),
        (requester(), request_cls("WRAP", response.wrapdata)),
    ):
        with pytest.raises(MslKeyExchangeException) as info:
            factory.crypto_context(ctx, request, renewed, first.issued)
        assert info.value.error is MslError.KEYX_WRAPPING_KEY_MISSING
    ctx_without_repo = requester()
    ctx_without_repo.wrap_repository = None
    with pytest.raises(MslKeyExchangeException) as info:
        factory.crypto_context(ctx_without_repo, request_cls("WRAP", response.wrapdata), renewed, first.issued)
    assert info.value.error is MslError.KEYX_WRAPPING_KEY_MISSING


@pytest.mark.parametrize(("exchange", "request_cls"), LADDERS)
def test_tampered_or_bogus_keys(exchange: type[LadderExchange], request_cls: type[LadderRequest]) -> None:
    server, client = responder(), requester()
    factory = exchange(psk_lookup())
    result = factory.generate_response(server, request_cls("PSK"), entity_auth_data=StubEntityAuth())
    good = over_the_wire_response(result.response, client)
    assert isinstance(good, LadderResponse)
    response_cls = exchange.response_class
    if exchange is JweLadderExchange:
        jwe = json.loads(good.wrap_key)
        jwe["ciphertext"] = ("B" if jwe["ciphertext"][0] == "A" else "A") + jwe["ciphertext"][1:]
        tampered_wrap_key = json.dumps(jwe).encode()
    else:
        tampered_wrap_key = good.wrap_key[:-1] + bytes([good.wrap_key[-1] ^ 1])
    tampered = response_cls(good.master_token, tampered_wrap_key, good.wrapdata, good.encryption_key, good.hmac_key)
    with pytest.raises(MslCryptoException) as crypto_info:
        factory.crypto_context(client, request_cls("PSK"), tampered, None)
    assert crypto_info.value.error is MslError.UNWRAP_ERROR
    # Correctly wrapped bytes that are not a JWK: INVALID_JWK.
    bogus_wrap_key = _kpw_context(exchange).wrap(b'{"kty":"zzz","k":"AAAAAAAAAAAAAAAAAAAAAA"}')
    bogus = response_cls(good.master_token, bogus_wrap_key, good.wrapdata, good.encryption_key, good.hmac_key)
    with pytest.raises(MslKeyExchangeException) as info:
        factory.crypto_context(client, request_cls("PSK"), bogus, None)
    assert info.value.error is MslError.INVALID_JWK
    assert client.wrap_repository is not None and good.wrapdata not in client.wrap_repository  # type: ignore[operator]


@pytest.mark.parametrize(("exchange", "request_cls"), LADDERS)
def test_psk_mechanism_errors(exchange: type[LadderExchange], request_cls: type[LadderRequest]) -> None:
    server = responder()
    with pytest.raises(MslKeyExchangeException) as info:
        exchange(None).generate_response(server, request_cls("PSK"), entity_auth_data=StubEntityAuth())
    assert info.value.error is MslError.UNSUPPORTED_KEYX_MECHANISM
    with pytest.raises(MslEntityAuthException) as ea_info:
        exchange(psk_lookup()).generate_response(server, request_cls("PSK"), entity_auth_data=StubEntityAuth("x"))
    assert ea_info.value.error is MslError.ENTITY_NOT_FOUND
    result = exchange(psk_lookup()).generate_response(server, request_cls("PSK"), entity_auth_data=StubEntityAuth())
    with pytest.raises(MslKeyExchangeException) as info:
        exchange(None).crypto_context(requester(), request_cls("PSK"), result.response, None)
    assert info.value.error is MslError.UNSUPPORTED_KEYX_MECHANISM


@pytest.mark.parametrize(("exchange", "request_cls"), LADDERS)
def test_not_permitted(exchange: type[LadderExchange], request_cls: type[LadderRequest]) -> None:
    utils = ConfigurableAuthenticationUtils()
    utils.deny(CLIENT, exchange.scheme)
    with pytest.raises(MslKeyExchangeException) as info:
        exchange(psk_lookup()).generate_response(
            responder(auth_utils=utils), request_cls("PSK"), entity_auth_data=StubEntityAuth()
        )
    assert info.value.error is MslError.KEYX_INCORRECT_DATA


def test_factory_repository_overrides_context() -> None:
    own = InMemoryWrapCryptoContextRepository()
    server, client = responder(), requester(keyx=[JweLadderExchange(psk_lookup(), own)])
    exchange = _run(server, client, JweLadderRequest("PSK"))
    assert isinstance(exchange.response, LadderResponse)
    assert exchange.response.wrapdata in own
    assert client.wrap_repository is not None and len(client.wrap_repository) == 0  # type: ignore[arg-type]
    assert b64encode(exchange.response.wrapdata)

"""DIFFIE_HELLMAN (keyx.md §4)."""

from __future__ import annotations

import hashlib

import pytest

from missile.authutils import ConfigurableAuthenticationUtils
from missile.crypto.derivation import dh_int_to_bytes
from missile.encoding import MslObject, b64encode, decode, encode
from missile.errors import MslError, MslException, MslKeyExchangeException
from missile.keyx import (
    DhParameterSpec,
    DiffieHellmanExchange,
    DiffieHellmanRequest,
    DiffieHellmanResponse,
    InMemoryDiffieHellmanParameters,
)
from missile.keyx.diffie_hellman import public_value, shared_secret

from . import (
    CLIENT,
    DH_ID,
    DH_P,
    DH_SPEC,
    StubEntityAuth,
    factories,
    over_the_wire_request,
    over_the_wire_response,
    requester,
    responder,
    run_exchange,
)

pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")

#: A 255-bit prime group, below cryptography's 512-bit minimum: the pow() fallback.
SMALL = DhParameterSpec(2**255 - 19, 2)


def test_round_trip_create_and_renew() -> None:
    server, client = responder(), requester()
    request = DiffieHellmanRequest.generate(DH_ID, DH_SPEC, random=client.random)
    first = run_exchange(server, client, request)
    second = run_exchange(server, client, request, master_token=first.issued)
    assert second.issued.serial_number == first.issued.serial_number
    assert second.issued.sequence_number == 1


def test_derivation_matches_spec() -> None:
    """SHA-384(0x00 || minimal z) split 16/32, z computed independently with pow()."""
    server, client = responder(), requester()
    request = DiffieHellmanRequest.generate(DH_ID, DH_SPEC)
    assert request.public_key == pow(2, request.private_key or 0, DH_P)
    exchange = run_exchange(server, client, request)
    response = exchange.response
    assert isinstance(response, DiffieHellmanResponse)
    z = pow(response.public_key, request.private_key or 0, DH_P)
    digest = hashlib.sha384(b"\x00" + z.to_bytes((z.bit_length() + 7) // 8, "big")).digest()
    assert exchange.issued.encryption_key == digest[:16]
    assert exchange.issued.signature_key == digest[16:48]


def test_small_group_uses_fallback() -> None:
    params = InMemoryDiffieHellmanParameters({"small": SMALL})
    server, client = responder(keyx=factories(dh=params)), requester(keyx=factories(dh=params))
    request = DiffieHellmanRequest.generate("small", SMALL)
    assert public_value(SMALL, 12345) == pow(2, 12345, SMALL.p)
    run_exchange(server, client, request)


def test_integer_encoding() -> None:
    server = responder()
    request = DiffieHellmanRequest(DH_ID, 0x0102)
    wire = decode(encode(request.keydata()))
    assert wire.get_bytes("publickey") == b"\x00\x01\x02"
    assert dh_int_to_bytes(0) == b"\x00"
    for raw in (b"\x01\x02", b"\x00\x01\x02", b"\x00\x00\x00\x01\x02"):
        parsed = DiffieHellmanRequest.parse(MslObject({"parametersid": DH_ID, "publickey": b64encode(raw)}), server)
        assert parsed.public_key == 0x0102
    # A value whose top bit is set still gets exactly one leading zero.
    big = DiffieHellmanRequest(DH_ID, DH_P - 2).keydata()["publickey"]
    assert big[:1] == b"\x00" and big[1] != 0 and len(big) == 65


def test_parse_errors() -> None:
    server = responder()
    with pytest.raises(MslKeyExchangeException) as info:
        DiffieHellmanRequest.parse(MslObject({"parametersid": DH_ID, "publickey": ""}), server)
    assert info.value.error is MslError.KEYX_INVALID_PUBLIC_KEY
    with pytest.raises(MslException) as any_info:
        DiffieHellmanRequest.parse(MslObject({"publickey": "AQI="}), server)
    assert any_info.value.error is MslError.MSL_PARSE_ERROR


def test_unknown_parameters_id() -> None:
    server = responder()
    request = over_the_wire_request(DiffieHellmanRequest.generate(DH_ID, DH_SPEC), server)
    empty = DiffieHellmanExchange(InMemoryDiffieHellmanParameters())
    with pytest.raises(MslKeyExchangeException) as info:
        empty.generate_response(server, request, entity_auth_data=StubEntityAuth())
    assert info.value.error is MslError.UNKNOWN_KEYX_PARAMETERS_ID


@pytest.mark.parametrize("y", [0, 1, DH_P - 1, DH_P, DH_P + 5])
def test_invalid_public_values(y: int) -> None:
    server = responder()
    factory = server.key_exchange_factory("DIFFIE_HELLMAN")
    assert factory is not None
    with pytest.raises(MslKeyExchangeException) as info:
        factory.generate_response(server, DiffieHellmanRequest(DH_ID, y), entity_auth_data=StubEntityAuth())
    assert info.value.error is MslError.KEYX_INVALID_PUBLIC_KEY
    with pytest.raises(MslKeyExchangeException) as info:
        shared_secret(DH_SPEC, 5, y)
    assert info.value.error is MslError.KEYX_INVALID_PUBLIC_KEY
    # The requester checks the responder's value too.
    client = requester()
    request = DiffieHellmanRequest.generate(DH_ID, DH_SPEC)
    result = factory.generate_response(
        server, over_the_wire_request(request, server), entity_auth_data=StubEntityAuth()
    )
    bad = DiffieHellmanResponse(result.response.master_token, DH_ID, y)
    with pytest.raises(MslKeyExchangeException) as info:
        factory.crypto_context(client, request, bad, None)
    assert info.value.error is MslError.KEYX_INVALID_PUBLIC_KEY


def test_requester_errors() -> None:
    server, client = responder(), requester()
    factory = DiffieHellmanExchange(InMemoryDiffieHellmanParameters({DH_ID: DH_SPEC, "other": DH_SPEC}))
    request = DiffieHellmanRequest.generate(DH_ID, DH_SPEC)
    result = factory.generate_response(
        server, over_the_wire_request(request, server), entity_auth_data=StubEntityAuth()
    )
    response = over_the_wire_response(result.response, client)
    other = DiffieHellmanRequest("other", request.public_key, request.private_key, DH_SPEC)
    with pytest.raises(MslKeyExchangeException) as info:
        factory.crypto_context(client, other, response, None)
    assert info.value.error is MslError.KEYX_RESPONSE_REQUEST_MISMATCH
    with pytest.raises(MslKeyExchangeException) as info:
        factory.crypto_context(client, DiffieHellmanRequest(DH_ID, request.public_key), response, None)
    assert info.value.error is MslError.KEYX_PRIVATE_KEY_MISSING
    # Without the group in the request, the factory's parameters are used (or UNKNOWN).
    bare = DiffieHellmanRequest(DH_ID, request.public_key, request.private_key)
    assert factory.crypto_context(client, bare, response, None) is not None
    with pytest.raises(MslKeyExchangeException) as info:
        DiffieHellmanExchange(InMemoryDiffieHellmanParameters()).crypto_context(client, bare, response, None)
    assert info.value.error is MslError.UNKNOWN_KEYX_PARAMETERS_ID
    # A response of another scheme is a mismatch.
    from missile.keyx import SymmetricWrappedResponse

    foreign = SymmetricWrappedResponse(response.master_token, "PSK", b"", b"")
    with pytest.raises(MslKeyExchangeException) as info:
        factory.crypto_context(client, request, foreign, None)
    assert info.value.error is MslError.KEYX_RESPONSE_REQUEST_MISMATCH


def test_not_permitted() -> None:
    utils = ConfigurableAuthenticationUtils()
    utils.deny(CLIENT, "DIFFIE_HELLMAN")
    server = responder(auth_utils=utils)
    factory = server.key_exchange_factory("DIFFIE_HELLMAN")
    assert factory is not None
    with pytest.raises(MslKeyExchangeException) as info:
        factory.generate_response(
            server, DiffieHellmanRequest.generate(DH_ID, DH_SPEC), entity_auth_data=StubEntityAuth()
        )
    assert info.value.error is MslError.KEYX_INCORRECT_DATA


def test_repr_hides_private_value() -> None:
    request = DiffieHellmanRequest.generate(DH_ID, DH_SPEC)
    assert str(request.private_key) not in repr(request)
    assert "p_bits=512" in repr(DH_SPEC)

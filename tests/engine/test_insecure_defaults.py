"""Misuse-resistant defaults: insecure schemes are refused unless explicitly enabled."""

from __future__ import annotations

import pytest

from missile.clock import FixedClock
from missile.context import INSECURE_SCHEMES, MslContext
from missile.crypto.null import ClientMslCryptoContext
from missile.encoding import decode, encode
from missile.engine.errors import MslErrorResponse
from missile.entityauth.base import parse_entity_auth_data
from missile.entityauth.none import NoneEntityAuthData, NoneEntityAuthFactory
from missile.entityauth.none_suffixed import NoneSuffixedEntityAuthData, NoneSuffixedEntityAuthFactory
from missile.errors import MslError, MslException, ResponseCode

from .harness import T0, Pair, make_pair, run


def _refusing(p_entity: str, keyx: str, allowed: frozenset[str] = frozenset()) -> Pair:
    # The harness server enables every insecure scheme; put the server back to the default.
    return make_pair(p_entity, keyx, server_config={"allowed_insecure_schemes": allowed})


@pytest.mark.parametrize("entity", ["NONE", "NONE_SUFFIXED"])
def test_server_refuses_unauthenticated_entities_by_default(entity: str) -> None:
    p = _refusing(entity, "DIFFIE_HELLMAN")

    async def go() -> None:
        with pytest.raises(MslErrorResponse) as info:
            await p.client.request(b"hello")
        assert info.value.response_code is ResponseCode.FAIL
        assert info.value.error is MslError.INCORRECT_ENTITYAUTH_DATA

    run(go())
    assert p.handled == []


@pytest.mark.parametrize("entity", ["NONE", "NONE_SUFFIXED"])
def test_server_accepts_unauthenticated_entities_when_enabled(entity: str) -> None:
    p = _refusing(entity, "DIFFIE_HELLMAN", frozenset({entity}))

    async def go() -> None:
        response = await p.client.request(b"hello")
        assert response.payload.startswith(b"echo hello")

    run(go())


def test_server_refuses_jwk_rsaes_by_default() -> None:
    p = _refusing("PSK", "ASYMMETRIC_WRAPPED/JWK_RSAES")

    async def go() -> None:
        with pytest.raises(MslErrorResponse) as info:
            await p.client.request(b"hello")
        assert info.value.error is MslError.UNSUPPORTED_KEYX_MECHANISM

    run(go())


def test_server_answers_jwk_rsaes_when_enabled_and_other_mechanisms_by_default() -> None:
    enabled = _refusing("PSK", "ASYMMETRIC_WRAPPED/JWK_RSAES", frozenset({"JWK_RSAES"}))
    default = _refusing("PSK", "ASYMMETRIC_WRAPPED/JWK_RSA")

    async def go() -> None:
        for p in (enabled, default):
            response = await p.client.request(b"hello")
            assert response.header.data.key_response_data is not None

    run(go())


def _bare_context(**kw: object) -> MslContext:
    return MslContext(
        msl_crypto=ClientMslCryptoContext(),
        entity_auth_factories={
            NoneEntityAuthFactory.scheme: NoneEntityAuthFactory(),
            NoneSuffixedEntityAuthFactory.scheme: NoneSuffixedEntityAuthFactory(),
        },
        clock=FixedClock(T0),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "data", [NoneEntityAuthData("device"), NoneSuffixedEntityAuthData("root", "1")], ids=["NONE", "NONE_SUFFIXED"]
)
def test_a_registered_factory_is_not_enough(data: object) -> None:
    """Even with the scheme's factory installed, a default context refuses the data."""
    wire = decode(encode(data))
    with pytest.raises(MslException) as info:
        parse_entity_auth_data(wire, _bare_context())
    assert info.value.error is MslError.INCORRECT_ENTITYAUTH_DATA
    parsed = parse_entity_auth_data(wire, _bare_context(allowed_insecure_schemes=INSECURE_SCHEMES))
    assert parsed == data


def test_only_insecure_schemes_can_be_allowed() -> None:
    with pytest.raises(ValueError, match="PSK"):
        _bare_context(allowed_insecure_schemes=frozenset({"PSK"}))

"""Shared helpers for the key exchange tests: responder and requester contexts and a
full request -> response -> session-keys round trip over the wire encoding."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from missile.authutils import AuthenticationUtils, PermissiveAuthenticationUtils
from missile.clock import FixedClock
from missile.context import INSECURE_SCHEMES, MslContext
from missile.crypto import ClientMslCryptoContext, SessionCryptoContext, SymmetricCryptoContext
from missile.crypto.context import CryptoContext
from missile.encoding import MslObject, decode, encode
from missile.entityauth.base import EntityAuthData
from missile.keyx import (
    DhParameterSpec,
    InMemoryDiffieHellmanParameters,
    InMemoryWrapCryptoContextRepository,
    KeyExchangeFactory,
    KeyExchangeResult,
    KeyRequestData,
    KeyResponseData,
    StaticPskWrapKeyLookup,
    parse_key_request_data,
    parse_key_response_data,
)
from missile.keyx.asymmetric_wrapped import AsymmetricWrappedExchange
from missile.keyx.diffie_hellman import DiffieHellmanExchange
from missile.keyx.jwe_ladder import JweLadderExchange
from missile.keyx.jwk_ladder import JwkLadderExchange
from missile.keyx.symmetric_wrapped import SymmetricWrappedExchange
from missile.tokens.factory import TokenFactory
from missile.tokens.master import MasterToken

NOW_MS = 1_735_689_600_000
CLIENT = "client1"
SERVER = "server1"

#: The reference test group (keyx.md §4): 512-bit, insecure, tests only.
DH_P = int(
    "C2048E076B268761DB1427BA3AD98473D32B0ABDEE98C0827923426F294EDA33"
    "92BF0032A1D8092055B58BAA07586A7D3E271C39A8C891F5CEEA4DEBDFA6B023",
    16,
)
DH_SPEC = DhParameterSpec(DH_P, 2)
DH_ID = "default1"

#: The PSK key set of the client (crypto.md §12), Kpw derived.
PSK_KPE = bytes.fromhex("dbd68ac676bfba6641ca6a4c771053ac")
PSK_KPH = bytes.fromhex("93edd1ddb772cfce217931265dbdb39c2bcdeeae1ba45d7972a1ba354e9a38c9")


@dataclass(eq=False)
class StubEntityAuth(EntityAuthData):
    """Entity auth data carrying only an identity (never registered, never on the wire)."""

    scheme: ClassVar[str] = "KEYX_TEST"
    encrypts: ClassVar[bool] = True
    protects_integrity: ClassVar[bool] = True

    name: str = CLIENT

    @property
    def identity(self) -> str:
        return self.name

    def authdata(self) -> Mapping[str, Any]:
        return {"identity": self.name}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext) -> Self:
        return cls(authdata.get_string("identity"))


def psk_lookup() -> StaticPskWrapKeyLookup:
    from missile.keyfile import PskKeySet

    return StaticPskWrapKeyLookup.from_key_sets([PskKeySet(CLIENT, PSK_KPE, PSK_KPH)])


def factories(
    *, psk: StaticPskWrapKeyLookup | None = None, dh: InMemoryDiffieHellmanParameters | None = None
) -> list[KeyExchangeFactory]:
    psk = psk if psk is not None else psk_lookup()
    dh = dh if dh is not None else InMemoryDiffieHellmanParameters({DH_ID: DH_SPEC})
    return [
        AsymmetricWrappedExchange(),
        SymmetricWrappedExchange(psk),
        DiffieHellmanExchange(dh),
        JweLadderExchange(psk),
        JwkLadderExchange(psk),
    ]


def responder(
    *, auth_utils: AuthenticationUtils | None = None, keyx: list[KeyExchangeFactory] | None = None
) -> MslContext:
    """A server: MSL token keys (with a wrap key), in-memory token factory, fixed clock."""
    msl = SymmetricCryptoContext(SERVER, os.urandom(16), os.urandom(32), os.urandom(16))
    return MslContext(
        msl_crypto=msl,
        entity_auth_data=StubEntityAuth(SERVER),
        key_exchange_factories=keyx if keyx is not None else factories(),
        token_factory=TokenFactory(),
        auth_utils=auth_utils if auth_utils is not None else PermissiveAuthenticationUtils(),
        clock=FixedClock(NOW_MS),
        allowed_insecure_schemes=INSECURE_SCHEMES,
    )


def requester(*, keyx: list[KeyExchangeFactory] | None = None, identity: str = CLIENT) -> MslContext:
    """A client: cannot open tokens, holds a wrap repository."""
    return MslContext(
        msl_crypto=ClientMslCryptoContext(),
        entity_auth_data=StubEntityAuth(identity),
        key_exchange_factories=keyx if keyx is not None else factories(),
        wrap_repository=InMemoryWrapCryptoContextRepository(),
        clock=FixedClock(NOW_MS),
    )


def over_the_wire_request(request: KeyRequestData, ctx: MslContext) -> KeyRequestData:
    """What a responder parses from the request's wire form (no private parts)."""
    return parse_key_request_data(decode(encode(request.to_msl())), ctx)


def over_the_wire_response(response: KeyResponseData, ctx: MslContext) -> KeyResponseData:
    """What a requester parses from the response's wire form."""
    return parse_key_response_data(decode(encode(response.to_msl())), ctx)


@dataclass
class Exchange:
    result: KeyExchangeResult
    response: KeyResponseData
    session: CryptoContext
    issued: MasterToken
    extra: dict[str, Any] = field(default_factory=dict)


def run_exchange(
    server: MslContext,
    client: MslContext,
    request: KeyRequestData,
    *,
    master_token: MasterToken | None = None,
) -> Exchange:
    """Request -> responder -> wire -> requester; checks the recovered keys are those
    inside the issued master token (opened with the responder's MSL crypto)."""
    factory = server.key_exchange_factory(request.scheme)
    assert factory is not None
    received = over_the_wire_request(request, server)
    if master_token is None:
        result = factory.generate_response(server, received, entity_auth_data=StubEntityAuth(client.identity))
    else:
        result = factory.generate_response(server, received, master_token=master_token)
    response = over_the_wire_response(result.response, client)
    assert not response.master_token.verified
    client_factory = client.key_exchange_factory(request.scheme)
    assert client_factory is not None
    session = client_factory.crypto_context(client, request, response, master_token)
    issued = MasterToken.parse(decode(encode(response.master_token.to_msl())), server.msl_crypto)
    assert issued.decrypted and issued.identity == client.identity
    assert isinstance(session, SessionCryptoContext)
    assert session.encryption_key == issued.encryption_key
    assert session.signature_key == issued.signature_key
    assert session.key_id == f"{client.identity}_{issued.sequence_number}"
    # The responder's context holds the same keys.
    server_session = result.crypto_context
    assert isinstance(server_session, SessionCryptoContext)
    assert server_session.encryption_key == issued.encryption_key
    assert server_session.signature_key == issued.signature_key
    # And the two interoperate.
    assert session.decrypt(server_session.encrypt(b"hello")) == b"hello"
    assert server_session.verify(b"data", session.sign(b"data"))
    return Exchange(result, response, session, issued)

"""Messages built by missile decode again, under every entity auth and key exchange scheme."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from missile.clock import FixedClock
from missile.context import MslContext
from missile.encoding.compression import CompressionAlgorithm
from missile.entityauth.base import EntityAuthData, EntityAuthFactory
from missile.entityauth.ecc import EccEntityAuthData, EccEntityAuthFactory
from missile.entityauth.mt_protected import MtProtectedEntityAuthData
from missile.entityauth.none import NoneEntityAuthData
from missile.entityauth.none_suffixed import NoneSuffixedEntityAuthData
from missile.entityauth.provisioned import ProvisionedEntityAuthData, ProvisionedEntityAuthFactory
from missile.entityauth.psk import PskEntityAuthData
from missile.entityauth.psk_profile import PskProfileEntityAuthData
from missile.entityauth.stores import InMemoryEccStore, InMemoryIdentityProvisioningService, InMemoryX509Store
from missile.entityauth.x509 import X509EntityAuthData, X509EntityAuthFactory
from missile.errors import MslError, MslException
from missile.keyx.asymmetric_wrapped import AsymmetricWrappedRequest
from missile.keyx.base import KeyRequestData
from missile.keyx.diffie_hellman import DhParameterSpec, DiffieHellmanRequest
from missile.keyx.jwe_ladder import JweLadderRequest
from missile.keyx.jwk_ladder import JwkLadderRequest
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest
from missile.messages import HeaderReceived, MessageEnd, MessageReader, MessageWriter, PayloadReceived
from missile.messages.builder import build_request, build_response
from missile.tokens.master import MasterToken

from .conftest import (
    DAY_MS,
    PSK_CLIENT_KEYS,
    RSA_CLIENT_KEYS,
    T0,
    client_ctx,
    encode_message,
    establish,
    keyfile,
    objects,
    receive,
    server_ctx,
)

# -- keys, generated once per module ------------------------------------------------------


@cache
def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def ecc_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@cache
def x509_chain() -> tuple[x509.Certificate, x509.Certificate, rsa.RSAPrivateKey]:
    """A CA certificate and a leaf it issued (valid 2020-2040), plus the leaf's key."""
    ca_key, leaf_key = rsa_key(1024), rsa.generate_private_key(public_exponent=65537, key_size=1024)
    start, end = dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2040, 1, 1, tzinfo=dt.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "missile test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x509client1")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return ca, leaf, leaf_key


def asymmetric(mechanism: str) -> AsymmetricWrappedRequest:
    # JWK_RSA / JWK_RSAES wrap a JWK that does not fit OAEP under 1024 bits (keyx.md §2).
    key = rsa_key(2048 if mechanism.startswith("JWK") else 1024)
    return AsymmetricWrappedRequest("ephemeral1", mechanism, key.public_key(), key)


def dh_request(ctx: MslContext) -> DiffieHellmanRequest:
    params = keyfile(PSK_CLIENT_KEYS).dh_parameters[0]
    return DiffieHellmanRequest.generate(params.parameters_id, DhParameterSpec(params.p, params.g), random=ctx.random)


# -- entity authentication schemes ---------------------------------------------------------


def _adding(ctx: MslContext, factory: EntityAuthFactory, **changes: Any) -> MslContext:
    """``ctx`` with one more entity auth factory (and other configuration ``changes``):
    a new context, since configuration is frozen, keeping the store and wrap keys."""
    factories = {**ctx.entity_auth_factories, factory.scheme: factory}
    config = dataclasses.replace(ctx.config, entity_auth_factories=factories, **changes)
    return MslContext.from_config(config, store=ctx.store, wrap_repository=ctx.wrap_repository)


def _psk(clock: FixedClock, server: MslContext) -> tuple[MslContext, MslContext, str]:
    return client_ctx(clock), server, "client1"


def _psk_profile(clock: FixedClock, server: MslContext) -> tuple[MslContext, MslContext, str]:
    return client_ctx(clock, entity_auth_data=PskProfileEntityAuthData("client1", "tv")), server, "client1-tv"


def _none(clock: FixedClock, server: MslContext) -> tuple[MslContext, MslContext, str]:
    return client_ctx(clock, entity_auth_data=NoneEntityAuthData("anon-device-7")), server, "anon-device-7"


def _none_suffixed(clock: FixedClock, server: MslContext) -> tuple[MslContext, MslContext, str]:
    client = client_ctx(clock, entity_auth_data=NoneSuffixedEntityAuthData("anon-root", "42"))
    return client, server, "anon-root.42"


def _rsa(clock: FixedClock, server: MslContext) -> tuple[MslContext, MslContext, str]:
    return client_ctx(clock, stem=RSA_CLIENT_KEYS), server, "rsaclient1"


def _ecc(clock: FixedClock, server: MslContext) -> tuple[MslContext, MslContext, str]:
    key = ecc_key()
    server_store, client_store = InMemoryEccStore(), InMemoryEccStore()
    server_store.add("ecckey1", key.public_key())
    client_store.add("ecckey1", private_key=key)
    server = _adding(server, EccEntityAuthFactory(server_store))
    client = _adding(
        client_ctx(clock),
        EccEntityAuthFactory(client_store, "ecckey1"),
        entity_auth_data=EccEntityAuthData("eccclient1", "ecckey1"),
    )
    return client, server, "eccclient1"


def _x509(clock: FixedClock, server: MslContext) -> tuple[MslContext, MslContext, str]:
    ca, leaf, leaf_key = x509_chain()
    server_store, client_store = InMemoryX509Store(), InMemoryX509Store()
    server_store.add_trusted(ca, T0)
    client_store.add_trusted(ca, T0)
    client_store.set_private_key(leaf, leaf_key)
    server = _adding(server, X509EntityAuthFactory(server_store))
    client = _adding(client_ctx(clock), X509EntityAuthFactory(client_store), entity_auth_data=X509EntityAuthData(leaf))
    return client, server, "CN=x509client1"


def _mt_protected(clock: FixedClock, server: MslContext) -> tuple[MslContext, MslContext, str]:
    # A PSK client that already holds a master token wraps its PSK data under it.
    client = client_ctx(clock)
    token, _, _ = establish(server, client, [SymmetricWrappedRequest("PSK")])
    # The data is built with the context, so it becomes the client's current data (runtime state).
    client.entity_auth_data = MtProtectedEntityAuthData.create(client, token, PskEntityAuthData("client1"))
    assert client.store is not None
    client.store.remove_crypto_context(token)  # so the next session's token is the one used
    return client, server, "client1"


def _provisioned(clock: FixedClock, server: MslContext) -> tuple[MslContext, MslContext, str]:
    server = _adding(server, ProvisionedEntityAuthFactory(InMemoryIdentityProvisioningService("device-")))
    client = _adding(
        client_ctx(clock),
        ProvisionedEntityAuthFactory(InMemoryIdentityProvisioningService("self-")),
        entity_auth_data=ProvisionedEntityAuthData(),
    )
    return client, server, "device-1-"


ENTITY_SCHEMES: dict[str, Callable[[FixedClock, MslContext], tuple[MslContext, MslContext, str]]] = {
    "NONE": _none,
    "NONE_SUFFIXED": _none_suffixed,
    "PSK": _psk,
    "PSK_PROFILE": _psk_profile,
    "RSA": _rsa,
    "ECC": _ecc,
    "X509": _x509,
    "MT_PROTECTED": _mt_protected,
    "PROVISIONED": _provisioned,
}


def _check_identity(identity: str | None, expected: str) -> None:
    assert identity is not None
    if expected.endswith("-"):  # provisioned: prefix plus counter and random suffix
        assert identity.startswith(expected)
    else:
        assert identity == expected


def _second_request(server: MslContext, client: MslContext, token: MasterToken, expected: str) -> None:
    """A request under the stored master token is accepted; its response reads back."""
    data = random.Random(7).randbytes(3000)
    request = build_request(client)
    assert request.header.master_token == token
    assert request.header.entity_auth_data is None
    at_server = receive(server, encode_message(request, data, chunk_size=1024))
    header = at_server.header_event.header
    assert header.master_token is not None and header.master_token.verified
    _check_identity(header.master_token.identity, expected)
    assert header.encrypting
    assert at_server.data == data and len(at_server.chunks) == 3
    response = build_response(server, header)
    assert response.key_exchange is None
    at_client = receive(client, encode_message(response, b"ack"))
    assert at_client.header_event.header.message_id == (request.header.message_id + 1) % (2**53 + 1)
    assert at_client.data == b"ack"


@pytest.mark.parametrize("scheme", list(ENTITY_SCHEMES))
def test_entity_auth_scheme_round_trip(scheme: str, clock: FixedClock) -> None:
    server = server_ctx(clock)
    client, server, expected = ENTITY_SCHEMES[scheme](clock, server)
    ead = client.get_entity_auth_data()
    assert isinstance(ead, EntityAuthData) and ead.scheme == scheme
    key_requests: list[KeyRequestData] = [asymmetric("RSA")]
    request = build_request(client, use_entity_auth=True, renewable=True, key_request_data=key_requests)
    at_server = receive(server, encode_message(request, b"first request"))
    header = at_server.header_event.header
    assert header.entity_auth_data is not None and header.entity_auth_data.scheme == scheme
    assert header.master_token is None
    _check_identity(header.identity, expected)
    assert header.encrypting is type(ead).encrypts
    assert at_server.data == b"first request"

    response = build_response(server, header)
    assert response.key_exchange is not None
    issued = response.key_exchange.response.master_token
    _check_identity(issued.identity, expected)
    at_client = receive(client, encode_message(response, b"first response"), key_request_data=key_requests)
    event = at_client.header_event
    assert event.key_exchange_crypto_context is not None
    assert event.payload_crypto_context is event.key_exchange_crypto_context
    assert at_client.data == b"first response"
    key_response = event.header.data.key_response_data
    assert key_response is not None
    token = key_response.master_token
    assert not token.decrypted  # a client cannot open the server's tokens
    assert client.store is not None
    client.store.set_crypto_context(token, event.key_exchange_crypto_context)
    _second_request(server, client, token, expected)


# -- key exchange schemes -------------------------------------------------------------------


KEYX_CASES: dict[str, Callable[[MslContext], KeyRequestData]] = {
    "ASYMMETRIC_WRAPPED/RSA": lambda ctx: asymmetric("RSA"),
    "ASYMMETRIC_WRAPPED/JWE_RSA": lambda ctx: asymmetric("JWE_RSA"),
    "ASYMMETRIC_WRAPPED/JWEJS_RSA": lambda ctx: asymmetric("JWEJS_RSA"),
    "ASYMMETRIC_WRAPPED/JWK_RSA": lambda ctx: asymmetric("JWK_RSA"),
    "ASYMMETRIC_WRAPPED/JWK_RSAES": lambda ctx: asymmetric("JWK_RSAES"),
    "SYMMETRIC_WRAPPED/PSK": lambda ctx: SymmetricWrappedRequest("PSK"),
    "DIFFIE_HELLMAN": dh_request,
    "JWE_LADDER/PSK": lambda ctx: JweLadderRequest("PSK"),
    "JWK_LADDER/PSK": lambda ctx: JwkLadderRequest("PSK"),
}


@pytest.mark.parametrize("case", list(KEYX_CASES))
def test_key_exchange_round_trip(case: str, clock: FixedClock) -> None:
    server, client = server_ctx(clock), client_ctx(clock)
    key_request = KEYX_CASES[case](client)
    token, crypto, at_client = establish(server, client, [key_request])
    key_response = at_client.header_event.header.data.key_response_data
    assert key_response is not None and key_response.scheme == case.split("/")[0]
    assert token.sequence_number == 0
    assert crypto.key_id == "client1_0"  # type: ignore[attr-defined]
    _second_request(server, client, token, "client1")


def _renew(
    server: MslContext, client: MslContext, clock: FixedClock, token: MasterToken, key_request: KeyRequestData
) -> MasterToken:
    """Move into the renewal window and renew ``token`` with ``key_request``."""
    clock.advance(DAY_MS + 1000)
    request = build_request(client, renewable=True, key_request_data=[key_request])
    assert request.header.master_token == token
    at_server = receive(server, encode_message(request, b"renew me"))
    assert at_server.data == b"renew me"
    response = build_response(server, at_server.header_event.header)
    assert response.key_exchange is not None
    at_client = receive(client, encode_message(response, b"renewed"), key_request_data=[key_request])
    assert at_client.data == b"renewed"
    key_response = at_client.header_event.header.data.key_response_data
    assert key_response is not None
    renewed = key_response.master_token
    assert renewed.serial_number == token.serial_number
    assert renewed.sequence_number == token.sequence_number + 1
    crypto = at_client.header_event.key_exchange_crypto_context
    assert crypto is not None and crypto.key_id == "client1_1"  # type: ignore[attr-defined]
    assert client.store is not None
    client.store.set_crypto_context(renewed, crypto)
    return renewed


@pytest.mark.parametrize("ladder", [JweLadderRequest, JwkLadderRequest])
def test_ladder_psk_then_wrap(ladder: type[JweLadderRequest] | type[JwkLadderRequest], clock: FixedClock) -> None:
    server, client = server_ctx(clock), client_ctx(clock)
    token, _, at_client = establish(server, client, [ladder("PSK")])
    first = at_client.header_event.header.data.key_response_data
    wrapdata = first.wrapdata  # type: ignore[union-attr]
    assert client.wrap_repository is not None
    assert client.wrap_repository.get_crypto_context(wrapdata) is not None
    renewed = _renew(server, client, clock, token, ladder("WRAP", wrapdata))
    # The client remembered the new wrapping key and forgot the old one (keyx.md §5).
    assert client.wrap_repository.get_crypto_context(wrapdata) is None
    _second_request(server, client, renewed, "client1")


def test_symmetric_wrapped_session_is_unsupported(clock: FixedClock) -> None:
    """keyx.md §3: session contexts have no wrapping key, so SESSION fails like the reference."""
    server, client = server_ctx(clock), client_ctx(clock)
    token, _, _ = establish(server, client, [SymmetricWrappedRequest("PSK")])
    clock.advance(DAY_MS + 1000)
    request = build_request(client, renewable=True, key_request_data=[SymmetricWrappedRequest("SESSION")])
    at_server = receive(server, encode_message(request, b"renew me"))
    assert at_server.header_event.header.master_token == token
    with pytest.raises(MslException) as info:
        build_response(server, at_server.header_event.header)
    assert info.value.error is MslError.WRAP_NOT_SUPPORTED


# -- payloads -----------------------------------------------------------------------------


def compressible(n: int, seed: int = 1) -> bytes:
    """Text that compresses well but stays under the 200x deflate-ratio limit."""
    rnd = random.Random(seed)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    out = bytearray()
    while len(out) < n:
        out += rnd.choice(words).encode() + b" "
    return bytes(out[:n])


@pytest.mark.parametrize("algo", [CompressionAlgorithm.GZIP, CompressionAlgorithm.LZW, None])
def test_multi_chunk_payload(algo: CompressionAlgorithm | None, session: object) -> None:
    from .conftest import Session

    assert isinstance(session, Session)
    data = compressible(20000)
    request = build_request(session.client)
    wire = encode_message(request, data, chunk_size=4096, compression=algo)
    at_server = receive(session.server, wire)
    chunks = at_server.chunks
    assert [c.chunk.sequence_number for c in chunks] == [1, 2, 3, 4, 5]
    assert [c.chunk.end_of_message for c in chunks] == [False] * 4 + [True]
    assert {c.chunk.compression_algo for c in chunks} == {algo}
    assert all(c.chunk.message_id == request.header.message_id for c in chunks)
    assert at_server.data == data
    if algo is not None:
        plain = encode_message(request, data, chunk_size=4096, compression=None)
        assert len(wire) < len(plain) * 0.8


def test_mixed_compression_between_chunks(session: object) -> None:
    from .conftest import Session

    assert isinstance(session, Session)
    request = build_request(session.client)
    writer = MessageWriter(request.header, request.payload_crypto_context, compression=None)
    parts = [compressible(3000, seed) for seed in range(4)]
    wire = writer.header_bytes() + writer.write(parts[0]) + writer.flush()
    wire += writer.set_compression(CompressionAlgorithm.LZW) + writer.write(parts[1])
    wire += writer.set_compression(CompressionAlgorithm.GZIP) + writer.write(parts[2])
    wire += writer.set_compression(None) + writer.write(parts[3]) + writer.close()
    at_server = receive(session.server, wire)
    assert [c.chunk.compression_algo for c in at_server.chunks] == [
        None,
        CompressionAlgorithm.LZW,
        CompressionAlgorithm.GZIP,
        None,
    ]
    assert at_server.data == b"".join(parts)


def test_header_only_message_is_accepted(session: object) -> None:
    """messages.md §1: a regular message whose stream ends after the header."""
    from .conftest import Session

    assert isinstance(session, Session)
    request = build_request(session.client)
    at_server = receive(session.server, request.header.encode())
    assert [type(e) for e in at_server.events] == [HeaderReceived, MessageEnd]
    assert at_server.reader.done


# -- any split of the byte stream gives the same events -----------------------------------


@cache
def _split_fixture() -> tuple[MslContext, bytes, list[tuple[str, object]]]:
    clock = FixedClock(T0)
    server, client = server_ctx(clock), client_ctx(clock)
    establish(server, client, [SymmetricWrappedRequest("PSK")])
    request = build_request(client)
    data = compressible(2500, 3) + random.Random(3).randbytes(700)
    wire = encode_message(request, data, chunk_size=700)
    return server, wire, _describe(receive(server, wire).events)


def _describe(events: list[object]) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for event in events:
        if isinstance(event, HeaderReceived):
            out.append(("header", (event.header.message_id, event.header.headerdata)))
        elif isinstance(event, PayloadReceived):
            out.append(("payload", event.chunk))
        else:
            out.append((type(event).__name__, None))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_split_gives_same_events(data: st.DataObject) -> None:
    server, wire, expected = _split_fixture()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    reader = MessageReader(server)
    events: list[object] = []
    previous = 0
    for cut in [*cuts, len(wire)]:
        events += reader.feed(wire[previous:cut])
        previous = cut
    events += reader.end_of_stream()
    assert _describe(events) == expected
    assert reader.remaining() == b""


def test_split_fixture_has_several_chunks() -> None:
    _, wire, expected = _split_fixture()
    assert len(objects(wire)) == 1 + 5
    assert [kind for kind, _ in expected] == ["header"] + ["payload"] * 5 + ["MessageEnd"]

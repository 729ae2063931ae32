"""Harness for the protocol-engine tests: a client and a server engine over the
in-memory loopback transport, sharing one pinned clock.

Contexts come from the shared vector key files where they describe the scheme (PSK,
RSA, NONE, NONE_SUFFIXED clients; the RSA server) and are built directly from
:class:`MslContext` and the scheme factories otherwise (PSK_PROFILE, ECC, X509).
Expensive keys (RSA, the X.509 PKI) are generated once per test session.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

import vectorlib
from missile.clock import FixedClock
from missile.context import INSECURE_SCHEMES, MslContext
from missile.crypto.null import ClientMslCryptoContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.engine.client import MslClient
from missile.engine.options import MessageOptions
from missile.engine.server import MslServer, Reply, Request
from missile.engine.transport import Channel, LoopbackTransport
from missile.entityauth.base import EntityAuthData, EntityAuthFactory
from missile.entityauth.config import entity_auth_from_keyfile
from missile.entityauth.ecc import EccEntityAuthData, EccEntityAuthFactory
from missile.entityauth.psk_profile import PskProfileEntityAuthData, PskProfileEntityAuthFactory
from missile.entityauth.rsa import RsaEntityAuthFactory
from missile.entityauth.stores import InMemoryEccStore, InMemoryKeySetStore, InMemoryRsaStore, InMemoryX509Store
from missile.entityauth.x509 import X509EntityAuthData, X509EntityAuthFactory
from missile.errors import MslException
from missile.keyfile import KeyFile
from missile.keyx.asymmetric_wrapped import AsymmetricWrappedRequest
from missile.keyx.base import KeyRequestData
from missile.keyx.config import dh_parameters_from_keyfile, key_exchange_from_keyfile
from missile.keyx.diffie_hellman import DiffieHellmanRequest
from missile.keyx.jwe_ladder import JweLadderRequest
from missile.keyx.jwk_ladder import JwkLadderRequest
from missile.keyx.repository import InMemoryWrapCryptoContextRepository, WrapCryptoContextRepository
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest
from missile.messages.error_header import ErrorHeader
from missile.messages.events import ErrorReceived
from missile.messages.header import MessageHeader
from missile.messages.reader import MessageReader
from missile.profiles import context_from_keyfile
from missile.stores.memory import InMemoryStore
from missile.tokens.factory import DAY_MS, TokenFactory
from missile.userauth.config import user_auth_from_keyfile

T = TypeVar("T")

#: 2025-01-01T00:00:00Z, the epoch of every test.
T0 = 1_735_689_600_000
HOUR_MS = 3600 * 1000

SERVER_VECTOR = "01_a_psk_request_encrypted"
CLIENT_VECTORS = {
    "PSK": "03_c_response_asymmetric_wrapped_rsa",
    "RSA": "51_i_rsa_response",
    "NONE": "54_i_none_response",
    "NONE_SUFFIXED": "56_i_none_suffixed_response",
}
ENTITY_SCHEMES = ["PSK", "PSK_PROFILE", "RSA", "ECC", "X509", "NONE", "NONE_SUFFIXED"]
KEYX_SCHEMES = [
    "SYMMETRIC_WRAPPED",
    "ASYMMETRIC_WRAPPED/RSA",
    "ASYMMETRIC_WRAPPED/JWE_RSA",
    "ASYMMETRIC_WRAPPED/JWEJS_RSA",
    "ASYMMETRIC_WRAPPED/JWK_RSA",
    "ASYMMETRIC_WRAPPED/JWK_RSAES",
    "DIFFIE_HELLMAN",
    "JWE_LADDER",
    "JWK_LADDER",
]
#: Key exchange schemes that wrap with the entity's pre-shared key (Kpw by identity).
PSK_ONLY_KEYX = {"SYMMETRIC_WRAPPED", "JWE_LADDER", "JWK_LADDER"}

USER1 = ("user1@foo.com", "user1pwd")
USER2 = ("user2@foo.com", "user2pwd")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one test coroutine."""
    return asyncio.run(coro)


@cache
def keyfile(stem: str) -> KeyFile:
    return KeyFile.from_dict(vectorlib.load(stem)["keys"])


# -- once-per-session key material ------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: x509.Certificate
    leaf: x509.Certificate
    leaf_key: rsa.RSAPrivateKey
    ecc_key: ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "missile"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _cert(subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool) -> x509.Certificate:
    now = datetime.fromtimestamp(T0 / 1000, UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


@cache
def pki() -> Pki:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _cert("Test CA", ca_key, "Test CA", ca_key, ca=True)
    leaf = _cert("x509client1", leaf_key, "Test CA", ca_key, ca=False)
    return Pki(ca, leaf, leaf_key, ec.generate_private_key(ec.SECP256R1()))


@cache
def ephemeral_rsa_key() -> rsa.RSAPrivateKey:
    """The one RSA key every ASYMMETRIC_WRAPPED request reuses."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# -- key request factories --------------------------------------------------------------


def key_requests_for(
    scheme: str, repository: WrapCryptoContextRepository | None = None
) -> Callable[[], Sequence[KeyRequestData]]:
    """A client ``key_requests`` callable for one key exchange scheme (see KEYX_SCHEMES)."""
    if scheme == "SYMMETRIC_WRAPPED":
        return lambda: [SymmetricWrappedRequest("PSK")]
    if scheme.startswith("ASYMMETRIC_WRAPPED/"):
        mechanism = scheme.split("/", 1)[1]
        key = ephemeral_rsa_key()
        return lambda: [AsymmetricWrappedRequest("kp-" + mechanism, mechanism, key.public_key(), key)]
    if scheme == "DIFFIE_HELLMAN":
        params = dh_parameters_from_keyfile(keyfile(SERVER_VECTOR))
        spec = params.parameter_spec("dh_default1")
        assert spec is not None
        return lambda: [DiffieHellmanRequest.generate("dh_default1", spec)]
    if scheme in ("JWE_LADDER", "JWK_LADDER"):
        cls = JweLadderRequest if scheme == "JWE_LADDER" else JwkLadderRequest
        assert isinstance(repository, InMemoryWrapCryptoContextRepository)
        repo = repository

        def ladder() -> list[KeyRequestData]:
            held = repo.wrapdata()
            if held:
                return [cls("WRAP", held[-1])]
            return [cls("PSK")]

        return ladder
    raise AssertionError(scheme)


# -- contexts ---------------------------------------------------------------------------


def server_context(
    clock: FixedClock,
    *,
    token_factory: TokenFactory | None = None,
    extra_factories: dict[str, EntityAuthFactory] | None = None,
    **overrides: Any,
) -> MslContext:
    """The RSA-authenticated server of the vectors, knowing every client scheme
    (``overrides``: other configuration, e.g. ``allowed_insecure_schemes``)."""
    factory = token_factory if token_factory is not None else TokenFactory()
    keys = keyfile(SERVER_VECTOR)
    p = pki()
    ecc_store = InMemoryEccStore()
    ecc_store.add("ecckey1", ec_public(p.ecc_key))
    x509_store = InMemoryX509Store()
    x509_store.add_trusted(p.ca, T0)
    _, factories = entity_auth_from_keyfile(keys)
    assert "PSK" in factories and "PSK_PROFILE" in factories
    factories["ECC"] = EccEntityAuthFactory(ecc_store)
    factories["X509"] = X509EntityAuthFactory(x509_store)
    factories.update(extra_factories or {})
    # The test server knows every client scheme, the insecure ones included (a default
    # context refuses them: tests/engine/test_insecure_defaults.py).
    overrides.setdefault("allowed_insecure_schemes", INSECURE_SCHEMES)
    return context_from_keyfile(
        keys, clock=clock, token_factory=factory, entity_auth_factories=factories, **overrides
    ).ctx


def ec_public(key: ec.EllipticCurvePrivateKey) -> ec.EllipticCurvePublicKey:
    return key.public_key()


def _server_rsa_factory() -> RsaEntityAuthFactory:
    """Clients verify the server's RSA entity authentication with its public key."""
    store = InMemoryRsaStore()
    for pair in keyfile(SERVER_VECTOR).rsa:
        if pair.key_pair_id == "rsakeyid1":
            store.add_der(pair.key_pair_id, pair.public_der)
    return RsaEntityAuthFactory(store)


def client_context(scheme: str, clock: FixedClock, **overrides: Any) -> MslContext:
    """A client of entity auth ``scheme`` with an empty store and wrap repository."""
    if scheme in CLIENT_VECTORS:
        overrides.setdefault("store", InMemoryStore())
        return context_from_keyfile(keyfile(CLIENT_VECTORS[scheme]), clock=clock, **overrides).ctx
    client_keys = keyfile(CLIENT_VECTORS["PSK"])
    factories: dict[str, EntityAuthFactory] = {"RSA": _server_rsa_factory()}
    data: EntityAuthData
    p = pki()
    if scheme == "PSK_PROFILE":
        psk_store = InMemoryKeySetStore()
        for entry in client_keys.psk:
            psk_store.add(entry.identity, entry.encryption_key, entry.hmac_key, entry.wrap_key)
        factories["PSK_PROFILE"] = PskProfileEntityAuthFactory(psk_store)
        data = PskProfileEntityAuthData("client1", "tv")
    elif scheme == "ECC":
        ecc_store = InMemoryEccStore()
        ecc_store.add("ecckey1", private_key=p.ecc_key)
        factories["ECC"] = EccEntityAuthFactory(ecc_store, "ecckey1")
        data = EccEntityAuthData("eccclient1", "ecckey1")
    elif scheme == "X509":
        x509_store = InMemoryX509Store()
        x509_store.add_trusted(p.ca, T0)
        x509_store.set_private_key(p.leaf, p.leaf_key)
        factories["X509"] = X509EntityAuthFactory(x509_store)
        data = X509EntityAuthData(p.leaf)
    else:
        raise AssertionError(scheme)
    kwargs: dict[str, Any] = {
        "msl_crypto": ClientMslCryptoContext(),
        "entity_auth_data": data,
        "entity_auth_factories": factories,
        "user_auth_factories": user_auth_from_keyfile(client_keys),
        "key_exchange_factories": key_exchange_from_keyfile(client_keys),
        "store": InMemoryStore(),
        "wrap_repository": InMemoryWrapCryptoContextRepository(),
        "clock": clock,
    }
    kwargs.update(overrides)
    return MslContext(**kwargs)


def entity_factories_of(keys: KeyFile) -> dict[str, EntityAuthFactory]:
    return entity_auth_from_keyfile(keys)[1]


# -- recording transport ----------------------------------------------------------------


@dataclass
class Seen:
    """What a recording wrapper saw on one connection."""

    request: MessageHeader | None = None
    handshake: bool = False
    response_bytes: bytes = b""


class RecordingServer:
    """Wraps a server coroutine: parses each request with a throw-away reader first.

    The copy of the request is parsed with a context that has the server's keys but a
    fresh token factory, so the real server's replay state is untouched.
    """

    def __init__(self, ctx: MslContext, serve: Callable[[Channel], Awaitable[object]]) -> None:
        self.serve = serve
        self.peek_ctx = MslContext(
            msl_crypto=ctx.msl_crypto,
            entity_auth_data=ctx.entity_auth_data,
            entity_auth_factories=ctx.entity_auth_factories,
            user_auth_factories=ctx.user_auth_factories,
            key_exchange_factories=ctx.key_exchange_factories,
            clock=ctx.clock,
            allowed_insecure_schemes=ctx.allowed_insecure_schemes,
        )
        self.seen: list[Seen] = []

    async def __call__(self, channel: Channel) -> None:
        data = b""
        while True:
            chunk = await channel.read()
            if not chunk:
                break
            data += chunk
        seen = Seen()
        self.seen.append(seen)
        reader = MessageReader(self.peek_ctx)
        try:
            reader.feed(data)
            seen.request = reader.header
            seen.handshake = reader.is_handshake
        except Exception:
            pass
        inner_client, inner_server = _replay_pair(data)
        task = asyncio.ensure_future(self.serve(inner_server))
        out = b""
        while True:
            chunk = await inner_client.read()
            if not chunk:
                break
            out += chunk
        await task
        seen.response_bytes = out
        await channel.write(out)
        await channel.finish()

    @property
    def message_ids(self) -> list[int | None]:
        return [s.request.message_id if s.request is not None else None for s in self.seen]


def _replay_pair(data: bytes) -> tuple[Channel, Channel]:
    from missile.engine.transport import channel_pair

    client_end, server_end = channel_pair()
    # Queue the recorded request for the server end, then its end of data.
    client_end._out.put_nowait(data)
    client_end._out.put_nowait(b"")
    return client_end, server_end


def error_of(seen: Seen, ctx: MslContext) -> ErrorHeader | None:
    """The error header a recorded response carried, parsed with ``ctx``."""
    reader = MessageReader(ctx)
    try:
        events = reader.feed(seen.response_bytes)
    except MslException:
        return None  # a message header the context can no longer open
    return next((e.error_header for e in events if isinstance(e, ErrorReceived)), None)


# -- a full pair ------------------------------------------------------------------------


async def echo(request: Request) -> Reply:
    user = request.user.identity if request.user is not None else "-"
    return Reply(data=b"echo " + request.payload + f" ({request.identity}/{user})".encode())


@dataclass
class Pair:
    clock: FixedClock
    server_ctx: MslContext
    client_ctx: MslContext
    server: MslServer
    transport: LoopbackTransport
    client: MslClient
    recorder: RecordingServer
    factory: TokenFactory
    handled: list[Request] = field(default_factory=list)
    new_server: Callable[[MslContext], MslServer] | None = None
    """Builds a server engine like the first one around another context."""

    def restart_server(self, **changes: Any) -> None:
        """Replace the server by a brand-new one running its configuration with ``changes``
        (a redeployment: same token state, fresh caches), behind the same recorder."""
        assert self.new_server is not None
        self.server_ctx = MslContext.from_config(dataclasses.replace(self.server_ctx.config, **changes))
        self.server = self.new_server(self.server_ctx)
        fresh = RecordingServer(self.server_ctx, self.server.serve_channel)
        self.recorder.serve, self.recorder.peek_ctx = fresh.serve, fresh.peek_ctx

    @property
    def store(self) -> InMemoryStore:
        store = self.client_ctx.store
        assert isinstance(store, InMemoryStore)
        return store

    @property
    def seen(self) -> list[Seen]:
        return self.recorder.seen


def make_pair(
    entity: str = "PSK",
    keyx: str = "SYMMETRIC_WRAPPED",
    *,
    clock: FixedClock | None = None,
    client_clock: FixedClock | None = None,
    handler: Callable[[Request], Awaitable[Reply | bytes | None]] = echo,
    token_factory: TokenFactory | None = None,
    server_options: MessageOptions | None = None,
    server_kwargs: dict[str, Any] | None = None,
    client_kwargs: dict[str, Any] | None = None,
    client_ctx: MslContext | None = None,
    server_config: dict[str, Any] | None = None,
    client_config: dict[str, Any] | None = None,
) -> Pair:
    """A client and a server engine over loopback; ``server_config`` and ``client_config``
    are configuration members for :func:`server_context` and :func:`client_context`."""
    clock = clock if clock is not None else FixedClock(T0)
    factory = token_factory if token_factory is not None else TokenFactory()
    server_ctx = server_context(clock, token_factory=factory, **(server_config or {}))
    handled: list[Request] = []

    async def recording_handler(request: Request) -> Reply | bytes | None:
        handled.append(request)
        return await handler(request)

    def new_server(ctx: MslContext) -> MslServer:
        return MslServer(ctx, recording_handler, options=server_options or MessageOptions(), **(server_kwargs or {}))

    server = new_server(server_ctx)
    recorder = RecordingServer(server_ctx, server.serve_channel)
    transport = LoopbackTransport(recorder)
    if client_ctx is not None:
        assert client_config is None, "client_config= configures the harness's own client context"
        cctx = client_ctx
    else:
        cctx = client_context(entity, client_clock or clock, **(client_config or {}))
    client = MslClient(
        cctx, transport, key_request_factory=key_requests_for(keyx, cctx.wrap_repository), **(client_kwargs or {})
    )
    return Pair(clock, server_ctx, cctx, server, transport, client, recorder, factory, handled, new_server)


__all__ = [
    "DAY_MS",
    "ENTITY_SCHEMES",
    "HOUR_MS",
    "KEYX_SCHEMES",
    "PSK_ONLY_KEYX",
    "Pair",
    "RecordingServer",
    "SymmetricCryptoContext",
    "T0",
    "USER1",
    "USER2",
    "client_context",
    "echo",
    "error_of",
    "key_requests_for",
    "make_pair",
    "run",
    "server_context",
]

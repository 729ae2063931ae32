"""Shared fixtures and helpers for the message-layer tests (round trips, negatives, streams).

Contexts are built from the shared vectors' key files: vector 01 gives a server
(``server1``, RSA entity auth, MSL token keys, PSK keys of ``client1``, DH parameters),
vector 03 a PSK client ``client1`` and vector 51 an RSA client ``rsaclient1``. Every
context built here shares one :class:`FixedClock` per test so tests can move time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from missile.clock import FixedClock
from missile.context import INSECURE_SCHEMES, MslContext
from missile.crypto.context import CryptoContext
from missile.encoding import EncoderFormat
from missile.keyfile import KeyFile
from missile.keyx.base import KeyRequestData
from missile.messages import (
    ErrorReceived,
    Event,
    HeaderReceived,
    MessageEnd,
    MessageReader,
    MessageWriter,
    PayloadReceived,
)
from missile.messages.builder import BuiltMessage, build_request, build_response
from missile.messages.capabilities import DEFAULT_CAPABILITIES, JSON_PREFERRED
from missile.profiles import context_from_keyfile
from missile.tokens.factory import TokenFactory
from missile.tokens.master import MasterToken

VECTOR_DIR = Path(__file__).resolve().parent.parent / "vectors"

SERVER_KEYS = "01_a_psk_request_encrypted"
PSK_CLIENT_KEYS = "03_c_response_asymmetric_wrapped_rsa"
RSA_CLIENT_KEYS = "51_i_rsa_response"

#: 2025-01-01T00:01:00Z, the time of vector 01.
T0 = 1735689660000
DAY_MS = 24 * 3600 * 1000


@cache
def keyfile(stem: str) -> KeyFile:
    """The ``keys`` object of a vector."""
    return KeyFile.load(VECTOR_DIR / f"{stem}.json")


def server_ctx(
    clock: FixedClock, *, token_factory: TokenFactory | None = None, stem: str = SERVER_KEYS, **kw: object
) -> MslContext:
    """A trusted-network server: RSA entity auth ``server1`` plus MSL token keys."""
    kw.setdefault("allowed_insecure_schemes", INSECURE_SCHEMES)
    return context_from_keyfile(
        keyfile(stem), role="server", clock=clock, token_factory=token_factory or TokenFactory(), **kw
    ).ctx


def client_ctx(clock: FixedClock, *, stem: str = PSK_CLIENT_KEYS, **kw: object) -> MslContext:
    """A client (default: PSK ``client1``) with an in-memory store and verify-nothing MSL crypto."""
    return context_from_keyfile(keyfile(stem), role="client", clock=clock, **kw).ctx


def encode_message(
    built: BuiltMessage | MessageWriter,
    data: bytes = b"",
    *,
    chunk_size: int | None = None,
    compression: object = "auto",
    flush_every: int | None = None,
) -> bytes:
    """The whole message: header, ``data`` in chunks, end-of-message chunk."""
    if isinstance(built, MessageWriter):
        writer = built
    else:
        kwargs: dict[str, object] = {}
        if chunk_size is not None:
            kwargs["chunk_size"] = chunk_size
        if compression != "auto":
            kwargs["compression"] = compression
        writer = MessageWriter(built.header, built.payload_crypto_context, **kwargs)  # type: ignore[arg-type]
    out = [writer.header_bytes()]
    if not writer._accepts_data:  # handshake / error
        out.append(writer.close())
        return b"".join(out)
    if flush_every:
        for i in range(0, len(data), flush_every):
            out.append(writer.write(data[i : i + flush_every]))
            out.append(writer.flush())
    else:
        out.append(writer.write(data))
    out.append(writer.close())
    return b"".join(out)


@dataclass
class Received:
    """What a reader made of a whole message."""

    reader: MessageReader
    events: list[Event] = field(default_factory=list)

    @property
    def header_event(self) -> HeaderReceived:
        event = self.events[0]
        assert isinstance(event, HeaderReceived), event
        return event

    @property
    def error_event(self) -> ErrorReceived:
        event = self.events[0]
        assert isinstance(event, ErrorReceived), event
        return event

    @property
    def chunks(self) -> list[PayloadReceived]:
        return [e for e in self.events if isinstance(e, PayloadReceived)]

    @property
    def data(self) -> bytes:
        return b"".join(e.data for e in self.chunks)

    @property
    def ended(self) -> bool:
        return bool(self.events) and isinstance(self.events[-1], MessageEnd | ErrorReceived)


def receive(
    ctx: MslContext,
    wire: bytes,
    *,
    key_request_data: Sequence[KeyRequestData] = (),
    end: bool = True,
    **kw: object,
) -> Received:
    """Feed ``wire`` to a new reader (and signal end of stream when ``end``)."""
    reader = MessageReader(ctx, key_request_data=key_request_data, **kw)  # type: ignore[arg-type]
    events = reader.feed(wire)
    if end:
        events += reader.end_of_stream()
    return Received(reader, events)


@dataclass
class Session:
    """A client holding a master token from a server, and the server that issued it."""

    clock: FixedClock
    server: MslContext
    client: MslContext
    master_token: MasterToken
    crypto: CryptoContext


def establish(
    server: MslContext,
    client: MslContext,
    key_requests: Sequence[KeyRequestData],
    *,
    data: bytes = b"hello",
    store: bool = True,
    **request_kw: object,
) -> tuple[MasterToken, CryptoContext, Received]:
    """One request with key request data and its response; returns the client's new session."""
    request = build_request(
        client,
        use_entity_auth=True,
        renewable=True,
        key_request_data=key_requests,
        **request_kw,  # type: ignore[arg-type]
    )
    at_server = receive(server, encode_message(request, data))
    assert at_server.data == data
    # A request in the binary format is answered by a server preferring it.
    binary = request_kw.get("encoder_format") is EncoderFormat.MISSILE_CBOR
    caps = DEFAULT_CAPABILITIES if binary else JSON_PREFERRED
    response = build_response(server, at_server.header_event.header, capabilities=caps)
    assert response.key_exchange is not None
    at_client = receive(client, encode_message(response, b"welcome"), key_request_data=key_requests)
    header = at_client.header_event.header
    assert header.data.key_response_data is not None
    crypto = at_client.header_event.key_exchange_crypto_context
    assert crypto is not None
    assert at_client.data == b"welcome"
    token = header.data.key_response_data.master_token
    if store:
        assert client.store is not None
        client.store.set_crypto_context(token, crypto)
    return token, crypto, at_client


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def server(clock: FixedClock) -> MslContext:
    return server_ctx(clock)


@pytest.fixture
def client(clock: FixedClock) -> MslContext:
    return client_ctx(clock)


@pytest.fixture
def session(clock: FixedClock, server: MslContext, client: MslContext) -> Session:
    """A PSK client holding a master token (SYMMETRIC_WRAPPED PSK) from ``server``."""
    from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest

    token, crypto, _ = establish(server, client, [SymmetricWrappedRequest("PSK")])
    return Session(clock, server, client, token, crypto)


def objects(wire: bytes) -> list[bytes]:
    """Split a message into its raw JSON objects."""
    from missile.encoding import ObjectStreamDecoder

    decoder = ObjectStreamDecoder(max_object_size=1 << 30)
    decoder.feed(wire)
    out = []
    while (raw := decoder.next_raw()) is not None:
        out.append(raw)
    return out


def join(parts: Iterable[bytes]) -> bytes:
    return b"".join(parts)

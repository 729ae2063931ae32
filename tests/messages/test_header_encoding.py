"""The header's encoding from cached token bytes is exactly the general encoder's."""

from __future__ import annotations

from missile.encoding import decode, encode
from missile.messages.builder import build_request, build_response
from missile.messages.capabilities import MessageCapabilities
from missile.messages.header import MessageHeader
from missile.messages.reader import MessageReader
from missile.messages.writer import MessageWriter

from .conftest import Session


def test_master_token_header_encodes_like_the_general_encoder(session: Session) -> None:
    server, client = session.server, session.client
    built = build_request(client)
    header = built.header
    assert header.master_token is not None
    assert header.encode() == encode(header.to_msl())
    # ... and a received header re-encodes to the very bytes that were sent.
    writer = MessageWriter(header, built.payload_crypto_context)
    wire = writer.header_bytes() + writer.close()
    reader = MessageReader(server, single_message=True)
    received = reader.feed(wire)[0].header  # type: ignore[attr-defined]
    assert isinstance(received, MessageHeader)
    assert received.encode() == writer.header_bytes() == encode(received.to_msl())
    response = build_response(server, received).header
    assert response.encode() == encode(response.to_msl(), response.encoder_format)
    assert decode(response.encode()).to_dict().keys() == {"mastertoken", "headerdata", "signature"}


def test_capabilities_intersection_is_by_value() -> None:
    a = MessageCapabilities.of(["GZIP", "LZW"], ["en-US", "fr"])
    b = MessageCapabilities.of(["LZW"], ["fr", "de"])
    first = a.intersection(b)
    assert first == MessageCapabilities.of(["LZW"], ["fr"])
    assert a.intersection(MessageCapabilities.of(["LZW"], ["fr", "de"])) == first
    assert b.intersection(a) == MessageCapabilities.of(["LZW"], ["fr"])
    assert a.intersection(None) is None
    assert first is not None and first.json_value == first.to_msl()

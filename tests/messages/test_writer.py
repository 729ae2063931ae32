"""The sans-IO message writer (messages.md §10)."""

from __future__ import annotations

import os

import pytest

from missile.context import MslContext
from missile.encoding.compression import CompressionAlgorithm
from missile.errors import MslError, MslInternalException, MslMessageException
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest
from missile.messages import MessageCapabilities, MessageWriter
from missile.messages.builder import BuiltMessage, build_error_response, build_request

from .conftest import Session, objects, receive


def _writer(session: Session, **kw: object) -> tuple[BuiltMessage, MessageWriter]:
    caps = kw.pop("capabilities", "default")
    request = (
        build_request(session.client) if caps == "default" else build_request(session.client, capabilities=caps)  # type: ignore[arg-type]
    )
    return request, MessageWriter(request.header, request.payload_crypto_context, **kw)  # type: ignore[arg-type]


def _read(session: Session, wire: bytes) -> list[tuple[int, bool, CompressionAlgorithm | None, bytes]]:
    result = receive(session.server, wire)
    return [(c.chunk.sequence_number, c.chunk.end_of_message, c.chunk.compression_algo, c.data) for c in result.chunks]


def test_header_bytes_are_the_header(session: Session) -> None:
    request, writer = _writer(session)
    assert writer.header_bytes() == request.header.encode()
    assert len(objects(writer.header_bytes())) == 1


def test_chunk_boundaries(session: Session) -> None:
    _, writer = _writer(session, chunk_size=10, compression=None)
    wire = writer.header_bytes()
    assert writer.write(b"abc") == b""  # buffered
    assert writer.write(b"defg") == b""
    flushed = writer.flush()
    assert len(objects(flushed)) == 1
    assert writer.flush() == b""  # nothing buffered: no chunk
    wire += flushed
    full = writer.write(b"0123456789" * 2 + b"xyz")  # two full chunks emitted, 3 bytes kept
    assert len(objects(full)) == 2
    wire += full
    exact = writer.write(b"AAAAAAA")  # 3 + 7 = exactly one chunk
    assert len(objects(exact)) == 1
    wire += exact
    wire += writer.write(b"tail")
    end = writer.close()
    assert len(objects(end)) == 1
    wire += end
    assert _read(session, wire) == [
        (1, False, None, b"abcdefg"),
        (2, False, None, b"0123456789"),
        (3, False, None, b"0123456789"),
        (4, False, None, b"xyzAAAAAAA"),
        (5, True, None, b"tail"),
    ]


def test_close_without_data_emits_empty_final_chunk(session: Session) -> None:
    _, writer = _writer(session)
    wire = writer.header_bytes() + writer.close()
    assert _read(session, wire) == [(1, True, None, b"")]
    assert writer.closed


def test_close_is_idempotent_and_final(session: Session) -> None:
    _, writer = _writer(session)
    writer.write(b"data")
    first = writer.close()
    assert first and writer.close() == b"" and writer.close() == b""
    with pytest.raises(MslInternalException):
        writer.write(b"more")
    with pytest.raises(MslInternalException):
        writer.flush()


def test_invalid_chunk_size(session: Session) -> None:
    with pytest.raises(ValueError):
        _writer(session, chunk_size=0)


def test_compression_only_when_smaller(session: Session) -> None:
    _, writer = _writer(session, chunk_size=4096)
    assert writer.compression is CompressionAlgorithm.GZIP
    text = b"the quick brown fox jumps over the lazy dog " * 50
    noise = os.urandom(2000)
    wire = writer.header_bytes() + writer.write(text) + writer.flush() + writer.write(noise) + writer.close()
    assert _read(session, wire) == [(1, False, CompressionAlgorithm.GZIP, text), (2, True, None, noise)]


def test_compression_defaults_from_header_capabilities(session: Session) -> None:
    _, lzw_only = _writer(session, capabilities=MessageCapabilities.of(["LZW"]))
    assert lzw_only.compression is CompressionAlgorithm.LZW
    _, none = _writer(session, capabilities=MessageCapabilities.of([]))
    assert none.compression is None
    _, no_caps = _writer(session, capabilities=None)
    assert no_caps.compression is None


def test_set_compression_refuses_unlisted_algorithm(session: Session) -> None:
    _, writer = _writer(session, capabilities=MessageCapabilities.of(["LZW"]))
    with pytest.raises(MslInternalException):
        writer.set_compression(CompressionAlgorithm.GZIP)
    with pytest.raises(MslInternalException):
        _writer(session, capabilities=MessageCapabilities.of(["LZW"]), compression=CompressionAlgorithm.GZIP)
    assert writer.set_compression(None) == b""
    assert writer.compression is None


def test_set_compression_flushes_pending_data(session: Session) -> None:
    _, writer = _writer(session, compression=None)
    text = b"compress me please " * 40
    wire = writer.header_bytes() + writer.write(text)
    switched = writer.set_compression(CompressionAlgorithm.LZW)
    assert len(objects(switched)) == 1
    assert writer.set_compression(CompressionAlgorithm.LZW) == b""  # no change, no chunk
    wire += switched + writer.write(text) + writer.close()
    assert _read(session, wire) == [(1, False, None, text), (2, True, CompressionAlgorithm.LZW, text)]


def test_handshake_refuses_data(session: Session) -> None:
    request = build_request(session.client, handshake=True, key_request_data=[SymmetricWrappedRequest("PSK")])
    writer = MessageWriter(request.header, request.payload_crypto_context)
    for call in (lambda: writer.write(b"x"), writer.flush):
        with pytest.raises(MslMessageException) as info:
            call()
        assert info.value.error is MslError.MESSAGE_FORMAT_ERROR
    assert writer.close() == b""
    result = receive(session.server, writer.header_bytes())
    assert result.reader.is_handshake and not result.chunks


def test_error_message_refuses_data(server: MslContext, client: MslContext) -> None:
    error = build_error_response(server, MslError.MSL_PARSE_ERROR, 1)
    writer = MessageWriter(error)
    with pytest.raises(MslMessageException) as info:
        writer.write(b"x")
    assert info.value.error is MslError.MESSAGE_FORMAT_ERROR
    assert writer.close() == b"" and writer.close() == b""
    assert receive(client, writer.header_bytes()).error_event.error_header.message_id == 2


def test_empty_write_is_noop(session: Session) -> None:
    _, writer = _writer(session)
    assert writer.write(b"") == b""
    assert writer.flush() == b""

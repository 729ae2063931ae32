"""Every ReaderLimits bound: exceeded by one, refused with its MslError; at the bound, accepted."""

from __future__ import annotations

import json
import os

from missile.crypto.symmetric import SymmetricCryptoContext
from missile.errors import MslError
from missile.keyx.asymmetric_wrapped import AsymmetricWrappedRequest
from missile.keyx.jwe_ladder import JweLadderRequest
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest
from missile.messages import ReaderLimits, encode_chunk
from missile.messages.builder import build_request
from missile.messages.limits import DEFAULT_LIMITS
from missile.tokens.service import ServiceToken

from .conftest import Session, encode_message, objects, receive
from .test_reader_negative import fails, session_message


def _tokens(session: Session, count: int, size: int = 16) -> list[ServiceToken]:
    crypto = SymmetricCryptoContext("st", os.urandom(16), os.urandom(32))
    return [ServiceToken.create(f"t{i}", os.urandom(size), crypto, encrypted=False) for i in range(count)]


def test_service_token_count(session: Session) -> None:
    request = build_request(session.client, service_tokens=_tokens(session, 5))
    wire = encode_message(request, b"data")
    exc = fails(session.server, wire, MslError.MSL_PARSE_ERROR, limits=ReaderLimits(max_service_tokens=4))
    assert "service tokens" in str(exc)
    got = receive(session.server, wire, limits=ReaderLimits(max_service_tokens=5))
    assert len(got.header_event.header.data.service_tokens) == 5


def test_default_service_token_count_refuses_a_flood(session: Session) -> None:
    request = build_request(session.client, service_tokens=_tokens(session, DEFAULT_LIMITS.max_service_tokens + 1))
    fails(session.server, encode_message(request, b"x"), MslError.MSL_PARSE_ERROR)


def test_service_token_size(session: Session) -> None:
    request = build_request(session.client, service_tokens=_tokens(session, 1, size=3000))
    wire = encode_message(request, b"data")
    exc = fails(session.server, wire, MslError.MSL_PARSE_ERROR, limits=ReaderLimits(max_token_size=3000))
    assert "service token" in str(exc)
    assert receive(session.server, wire, limits=ReaderLimits(max_token_size=8000)).reader.done


def test_master_token_size(session: Session) -> None:
    _, wire = session_message(session)
    token = json.loads(objects(wire)[0])["mastertoken"]
    token_size = len(token["tokendata"]) + len(token["signature"])
    exc = fails(session.server, wire, MslError.MSL_PARSE_ERROR, limits=ReaderLimits(max_token_size=token_size // 2))
    assert "mastertoken" in str(exc)
    assert receive(session.server, wire, limits=ReaderLimits(max_token_size=token_size)).reader.done


def test_key_request_count(session: Session) -> None:
    requests = [SymmetricWrappedRequest("PSK"), SymmetricWrappedRequest("SESSION"), JweLadderRequest("PSK")]
    request = build_request(session.client, key_request_data=requests, renewable=True)
    wire = encode_message(request, b"data")
    fails(session.server, wire, MslError.MSL_PARSE_ERROR, limits=ReaderLimits(max_key_requests=2))
    got = receive(session.server, wire, limits=ReaderLimits(max_key_requests=3))
    assert len(got.header_event.header.data.key_request_data) == 3


def test_chunk_count(session: Session) -> None:
    header, wire = session_message(session, b"0123456789" * 50)  # 100-byte chunks
    chunks = len(objects(wire)) - 1
    assert chunks >= 5
    exc = fails(session.server, wire, MslError.MESSAGE_FORMAT_ERROR, limits=ReaderLimits(max_chunks=chunks - 1))
    assert exc.message_id == header.message_id
    assert receive(session.server, wire, limits=ReaderLimits(max_chunks=chunks)).reader.done


def test_total_message_size(session: Session) -> None:
    _, wire = session_message(session)
    fails(session.server, wire, MslError.MESSAGE_FORMAT_ERROR, limits=ReaderLimits(max_message_size=len(wire) - 1))
    assert receive(session.server, wire, limits=ReaderLimits(max_message_size=len(wire))).reader.done


def test_many_empty_chunks_stop_at_the_chunk_limit(session: Session) -> None:
    """Endless tiny chunks are refused once the count is passed, before the stream ends."""
    header, _ = session_message(session)
    wire = header.encode() + b"".join(
        encode_chunk(session.crypto, n, header.message_id, b"x", end_of_message=False) for n in range(1, 12)
    )
    fails(session.server, wire, MslError.MESSAGE_FORMAT_ERROR, limits=ReaderLimits(max_chunks=10), end=False)


def test_oversized_key_request_is_bounded_by_the_header_limit(session: Session) -> None:
    """Key request data has no limit of its own: the header size bounds it."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    req = AsymmetricWrappedRequest("kp", "JWK_RSA", key.public_key(), key)
    request = build_request(session.client, key_request_data=[req], renewable=True)
    wire = encode_message(request, b"data")
    header_len = len(objects(wire)[0])
    fails(session.server, wire, MslError.MSL_PARSE_ERROR, limits=ReaderLimits(max_header_size=header_len - 1))

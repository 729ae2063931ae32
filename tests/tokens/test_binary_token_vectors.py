"""The checked-in vectors of tokens issued in the binary format (tests/vectors-binary/):
a binary response issuing binary tokens, a binary request under them, and the
cross-format requests of ``cross-format.json`` (binary tokens in a JSON message, JSON
tokens in a binary one) decode, with their keys, to what they are expected to mean, and
carry each token in the format it was issued in."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from messages.vector_decoding import decode_vector
from missile.encoding import EncoderFormat, ObjectStreamDecoder, decode
from missile.errors import MslException
from missile.messages import HeaderReceived
from missile.messages.header import MessageHeader

BIN = EncoderFormat.MISSILE_CBOR
VECTORS = Path(__file__).resolve().parents[1] / "vectors-binary"
CROSS = json.loads((VECTORS / "cross-format.json").read_text())["vectors"]


def _plain(value: Any) -> Any:
    """The vectors' JSON form of a decoded value: bytes as ``{"$bytes": base64}``."""
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _decoded(vector: dict[str, Any]) -> tuple[dict[str, Any], MessageHeader]:
    out = decode_vector(vector)
    first = out.pop("events")[0]
    assert isinstance(first, HeaderReceived)
    return json.loads(json.dumps(_plain(out))), first.header


def _token_formats(header: MessageHeader) -> set[int]:
    data = header.data
    master = data.key_response_data.master_token if data.key_response_data is not None else header.master_token
    tokens = [master, data.user_id_token, *data.service_tokens]
    return {t.tokendata[0] for t in tokens if t is not None}


def _object_formats(vector: dict[str, Any]) -> set[int]:
    decoder = ObjectStreamDecoder()
    decoder.feed(base64.b64decode(vector["message_b64"]))
    firsts = set()
    while (raw := decoder.next_raw()) is not None:
        firsts.add(raw[0])
    return firsts


@pytest.mark.parametrize("stem", ["24_missile_response", "26_missile_request_under_binary-issued_tokens"])
def test_a_binary_exchange_carries_binary_issued_tokens(stem: str) -> None:
    vector = json.loads((VECTORS / f"{stem}.json").read_text())
    decoded, header = _decoded(vector)
    assert decoded == vector["expected"]
    assert _token_formats(header) == {BIN.identifier}
    mt = decoded["header"]["mastertoken"] or decoded["header"]["keyresponsedata"]["mastertoken"]
    assert mt["identity"] == "client1"  # opened with the issuer's keys of the vector
    assert decoded["header"]["useridtoken"]["user"] == "user1@foo.com"


@pytest.mark.parametrize("index", range(len(CROSS)), ids=[v["name"] for v in CROSS])
def test_a_cross_format_request_decodes_with_its_tokens_as_issued(index: int) -> None:
    vector = CROSS[index]
    decoded, header = _decoded(vector)
    assert decoded == vector["expected"]
    written = EncoderFormat(vector["encoder_format"])
    other = BIN.identifier if written is EncoderFormat.JSON else EncoderFormat.JSON.identifier
    assert _object_formats(vector) == {written.identifier}  # the message in one format
    assert _token_formats(header) == {other}  # its tokens in the other, byte for byte
    assert header.master_token is not None and header.master_token.verified
    assert decoded["header"]["user"] == "user1@foo.com"
    assert [t["data_b64"] for t in decoded["header"]["servicetokens"]] == [
        base64.b64encode(b"service data").decode()
    ]


def test_cross_format_vectors_cover_both_directions() -> None:
    assert {v["encoder_format"] for v in CROSS} == {"JSON", BIN.value}


def test_a_binary_token_with_a_flipped_bit_is_not_trusted() -> None:
    vector = json.loads((VECTORS / "26_missile_request_under_binary-issued_tokens.json").read_text())
    message = base64.b64decode(vector["message_b64"])
    _, header = _decoded(vector)
    assert header.master_token is not None
    tokendata = header.master_token.tokendata
    at = message.index(tokendata) + len(tokendata) - 1  # the token's last byte (a sequence number)
    tampered = message[:at] + bytes([message[at] ^ 0x01]) + message[at + 1 :]
    with pytest.raises(MslException):
        decode_vector({**vector, "message_b64": base64.b64encode(tampered).decode()})
    assert decode(tokendata).get_int("sequencenumber") >= 0

"""Payload chunk codecs: how a crypto context seals and opens payload chunks.

A payload chunk (messages.md §6) nests three layers: the chunk plaintext (the data and
its sequencing fields), the ciphertext envelope of that plaintext, and the chunk object
carrying the envelope and its signature. :class:`GeneralChunkCodec` builds and reads the
layers with any context's public operations and the general encoder and decoder; it is
the reference behaviour. A context may offer a codec of its own
(:meth:`~missile.crypto.context.CryptoContext.chunk_codec`) that writes exactly the same
bytes and gives exactly the same results and errors, only faster; the symmetric
contexts do (:mod:`missile.crypto.symmetric_chunks`), and property tests hold the two
equal byte for byte.

The members are written in the reference's order in JSON (the plaintext ``data``,
``messageid``, ``compressionalgo``, ``endofmsg``, ``sequencenumber``; the chunk
``payload``, ``signature``), in deterministic CBOR order in the binary format
(docs/binary-format.md §5.5). Both put the data first, which lets a codec write and read
it as one run.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, NamedTuple

from missile.crypto.context import CryptoContext
from missile.crypto.envelopes import envelope_in_format
from missile.encoding import EncoderFormat, MslObject, cbor, decode, encode
from missile.errors import MslEncodingException, MslError, MslMessageException

__all__ = [
    "KEY_DATA",
    "ChunkCodec",
    "ChunkHead",
    "GeneralChunkCodec",
    "chunk_object",
    "plaintext_parts",
    "read_plaintext",
]

KEY_PAYLOAD = "payload"
KEY_SIGNATURE = "signature"
KEY_SEQUENCE_NUMBER = "sequencenumber"
KEY_MESSAGE_ID = "messageid"
KEY_END_OF_MESSAGE = "endofmsg"
KEY_COMPRESSION_ALGO = "compressionalgo"
KEY_DATA = "data"


class ChunkHead(NamedTuple):
    """The fields of a chunk plaintext other than its data, as carried (no range or
    meaning checks: those are the message layer's, :mod:`missile.messages.payload`).
    A named tuple: one is made for every chunk, and a tuple is the cheapest to make."""

    sequence_number: int
    message_id: int
    end_of_message: bool = False
    compression_algo: str | None = None
    """The compression algorithm's wire name, if the data is compressed."""


class ChunkCodec(ABC):
    """Seals and opens the payload chunks of one encoder format under one crypto context."""

    encoder_format: EncoderFormat

    @abstractmethod
    def seal(self, head: ChunkHead, data: bytes | memoryview) -> bytes:
        """The encoded chunk: ``data`` and ``head`` encrypted, then signed."""

    @abstractmethod
    def open(self, chunk: bytes) -> tuple[ChunkHead, bytes]:
        """Verify, decrypt and parse an encoded chunk (either format, told by its first
        byte): its head and its data (still compressed, if it is). A signature that does
        not verify is PAYLOAD_VERIFICATION_FAILED, a malformed plaintext MSL_PARSE_ERROR;
        the context's decryption errors pass through."""


def plaintext_fields(head: ChunkHead, data: bytes | memoryview) -> dict[str, Any]:
    """The chunk plaintext as an object to encode (absent members are None)."""
    return {
        KEY_SEQUENCE_NUMBER: head.sequence_number,
        KEY_MESSAGE_ID: head.message_id,
        KEY_END_OF_MESSAGE: True if head.end_of_message else None,
        KEY_COMPRESSION_ALGO: head.compression_algo,
        KEY_DATA: bytes(data),
    }


def plaintext_parts(head: ChunkHead, fmt: EncoderFormat, data_size: int) -> tuple[bytes, bytes]:
    """The chunk plaintext's bytes before and after its data: in JSON the data's base64
    text goes between them, in the binary format the data itself. Equal to
    ``encode(plaintext_fields(head, data), fmt)`` around the data (tested)."""
    if fmt is EncoderFormat.JSON:
        if head.compression_algo is None:  # the usual case, in one formatting
            form = _JSON_END_TAIL if head.end_of_message else _JSON_TAIL
            return _JSON_DATA_HEAD, form % (head.message_id, head.sequence_number)
        tail = [b'","messageid":%d' % head.message_id]
        if head.compression_algo is not None:
            tail += (b',"compressionalgo":', json.dumps(head.compression_algo, ensure_ascii=False).encode("utf-8"))
        if head.end_of_message:
            tail.append(b',"endofmsg":true')
        tail.append(b',"sequencenumber":%d}' % head.sequence_number)
        return _JSON_DATA_HEAD, b"".join(tail)
    count = 3 + head.end_of_message + (head.compression_algo is not None)
    prefix = b"".join((_BINARY_IDENTIFIER, cbor.map_head(count), _BINARY_DATA, cbor.bytes_head(data_size)))
    parts = [_BINARY_END_OF_MESSAGE] if head.end_of_message else []
    parts += (_BINARY_MESSAGE_ID, cbor.encode_value(head.message_id))
    parts += (_BINARY_SEQUENCE_NUMBER, cbor.encode_value(head.sequence_number))
    if head.compression_algo is not None:
        parts += (_BINARY_COMPRESSION_ALGO, cbor.encode_text(head.compression_algo))
    return prefix, b"".join(parts)


_JSON_DATA_HEAD = b'{"data":"'
_JSON_TAIL = b'","messageid":%d,"sequencenumber":%d}'
_JSON_END_TAIL = b'","messageid":%d,"endofmsg":true,"sequencenumber":%d}'
_BINARY_IDENTIFIER = bytes((cbor.IDENTIFIER,))
_BINARY_DATA = cbor.encode_text(KEY_DATA)
_BINARY_END_OF_MESSAGE = cbor.encode_text(KEY_END_OF_MESSAGE) + cbor.encode_value(True)
_BINARY_MESSAGE_ID = cbor.encode_text(KEY_MESSAGE_ID)
_BINARY_SEQUENCE_NUMBER = cbor.encode_text(KEY_SEQUENCE_NUMBER)
_BINARY_COMPRESSION_ALGO = cbor.encode_text(KEY_COMPRESSION_ALGO)


def read_plaintext(fields: MslObject) -> tuple[ChunkHead, bytes]:
    """The head and data of a decoded chunk plaintext; wrong or missing members are
    MSL_PARSE_ERROR."""
    try:
        head = ChunkHead(
            fields.get_int(KEY_SEQUENCE_NUMBER),
            fields.get_int(KEY_MESSAGE_ID),
            fields.opt_bool(KEY_END_OF_MESSAGE, False),
            fields.opt_string(KEY_COMPRESSION_ALGO),
        )
        return head, fields.get_bytes(KEY_DATA)
    except MslEncodingException as exc:
        raise MslEncodingException(MslError.MSL_PARSE_ERROR, exc.detail) from exc


def chunk_object(payload: bytes, signature: bytes) -> dict[str, bytes]:
    """The chunk object around a payload envelope and its signature."""
    return {KEY_PAYLOAD: payload, KEY_SIGNATURE: signature}


class GeneralChunkCodec(ChunkCodec):
    """Every layer whole, with the context's public operations: the reference behaviour,
    for any context."""

    __slots__ = ("_crypto", "encoder_format")

    def __init__(self, crypto: CryptoContext, encoder_format: EncoderFormat) -> None:
        self._crypto = crypto
        self.encoder_format = encoder_format

    def seal(self, head: ChunkHead, data: bytes | memoryview) -> bytes:
        """See :meth:`ChunkCodec.seal`."""
        fmt = self.encoder_format
        plaintext = encode(plaintext_fields(head, data), fmt)
        payload = envelope_in_format(self._crypto.encrypt(plaintext), fmt)
        return encode(chunk_object(payload, self._crypto.sign(payload)), fmt)

    def open(self, chunk: bytes) -> tuple[ChunkHead, bytes]:
        """See :meth:`ChunkCodec.open`."""
        obj = decode(chunk)
        payload = obj.get_bytes(KEY_PAYLOAD)
        if not self._crypto.verify(payload, obj.get_bytes(KEY_SIGNATURE)):
            raise MslMessageException(MslError.PAYLOAD_VERIFICATION_FAILED)
        plaintext = self._crypto.decrypt(payload)
        try:
            fields = decode(plaintext)
        except MslEncodingException as exc:
            raise MslEncodingException(MslError.MSL_PARSE_ERROR, exc.detail) from exc
        return read_plaintext(fields)

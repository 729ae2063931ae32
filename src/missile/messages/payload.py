"""Payload chunks (messages.md §6).

Each chunk is independently compressed (optionally), encrypted and signed, so a message
of any length streams chunk by chunk. The chunk JSON is assembled directly from bytes:
its fields are integers, fixed names and base64 text that never need escaping, which
spares the JSON encoder a scan over megabytes of base64. In the binary format
(docs/binary-format.md §6) the chunk and its plaintext are CBOR maps with byte strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from missile.crypto.context import CryptoContext
from missile.crypto.envelopes import CiphertextEnvelope, EnvelopeVersion, envelope_in_format
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import EncoderFormat, MslObject, cbor, decode, in_range
from missile.encoding.base64 import b64encode_bytes
from missile.encoding.codec import encode_binary, match_canonical
from missile.encoding.compression import DEFAULT_MAX_DEFLATE_RATIO, CompressionAlgorithm, compress, decompress
from missile.errors import MslEncodingException, MslError, MslException, MslInternalException, MslMessageException
from missile.messages.large_chunks import STREAM_THRESHOLD, encode_large, open_large

__all__ = ["PayloadChunk", "encode_chunk"]

KEY_PAYLOAD = "payload"
KEY_SIGNATURE = "signature"
KEY_SEQUENCE_NUMBER = "sequencenumber"
KEY_MESSAGE_ID = "messageid"
KEY_END_OF_MESSAGE = "endofmsg"
KEY_COMPRESSION_ALGO = "compressionalgo"
KEY_DATA = "data"


_MIN_COMPRESSIBLE = 128


def _b64(data: bytes | memoryview) -> bytes:
    return b64encode_bytes(data)


def _fast_symmetric(crypto: CryptoContext) -> bool:
    """True when ``crypto`` is a symmetric context whose encrypt, sign and decrypt are
    the stock ones, so the streamed and in-place versions give exactly the same bytes."""
    cls = type(crypto)
    return (
        isinstance(crypto, SymmetricCryptoContext)
        and cls.encrypt is SymmetricCryptoContext.encrypt
        and cls.sign is SymmetricCryptoContext.sign
        and cls.decrypt is SymmetricCryptoContext.decrypt
    )


def encode_chunk(
    crypto: CryptoContext,
    sequence_number: int,
    message_id: int,
    data: bytes | memoryview,
    *,
    end_of_message: bool = False,
    compression: CompressionAlgorithm | None = None,
    max_ratio: int | None = DEFAULT_MAX_DEFLATE_RATIO,
    encoder_format: EncoderFormat = EncoderFormat.JSON,
) -> bytes:
    """Build one encoded payload chunk in ``encoder_format``; compression is kept only
    when it makes the data smaller and stays within ``max_ratio`` (None lifts that cap,
    e.g. to craft tests)."""
    if not (in_range(sequence_number) and in_range(message_id)):
        raise MslInternalException(f"sequence number {sequence_number} or message ID {message_id} out of range")
    algo: CompressionAlgorithm | None = None
    # Below this size compression saves a few bytes at best (a gzip member alone is 18
    # bytes of framing) and costs more than the rest of the chunk: it is not attempted.
    if compression is not None and len(data) > _MIN_COMPRESSIBLE:
        compressed = compress(compression, bytes(data))
        # Use compression only when smaller, and never beyond the inflate ratio a
        # receiver enforces (encoding.md §8.1: 200 by default in the reference too),
        # or the receiver would refuse the chunk as a decompression bomb.
        if compressed is not None and (max_ratio is None or len(compressed) * max_ratio >= len(data)):
            data, algo = compressed, compression
    if encoder_format is EncoderFormat.MISSILE_CBOR:
        return _encode_binary_chunk(crypto, sequence_number, message_id, data, end_of_message, algo)
    parts = [b'{"sequencenumber":%d,"messageid":%d' % (sequence_number, message_id)]
    if end_of_message:
        parts.append(b',"endofmsg":true')
    if algo is not None:
        parts.append(b',"compressionalgo":"%s"' % algo.value.encode("ascii"))
    parts.append(b',"data":"')
    head = b"".join(parts)
    if len(data) > STREAM_THRESHOLD and _fast_symmetric(crypto):
        assert isinstance(crypto, SymmetricCryptoContext)
        return encode_large(crypto, head, data)
    payload = crypto.encrypt(b"".join((head, _b64(data), b'"}')))
    signature = crypto.sign(payload)
    return b"".join((b'{"payload":"', _b64(payload), b'","signature":"', _b64(signature), b'"}'))


def _encode_binary_chunk(
    crypto: CryptoContext,
    sequence_number: int,
    message_id: int,
    data: bytes | memoryview,
    end_of_message: bool,
    algo: CompressionAlgorithm | None,
) -> bytes:
    plaintext = encode_binary(
        {
            KEY_SEQUENCE_NUMBER: sequence_number,
            KEY_MESSAGE_ID: message_id,
            KEY_END_OF_MESSAGE: True if end_of_message else None,
            KEY_COMPRESSION_ALGO: algo.value if algo is not None else None,
            KEY_DATA: data,
        }
    )
    payload = envelope_in_format(crypto.encrypt(plaintext), EncoderFormat.MISSILE_CBOR)
    signature = crypto.sign(payload)
    # {"payload": h'…', "signature": h'…'}, keys in their deterministic order.
    return b"".join(
        (
            _BINARY_CHUNK_HEAD,
            cbor.bytes_head(len(payload)),
            payload,
            _BINARY_SIGNATURE,
            cbor.bytes_head(len(signature)),
            signature,
        )
    )


_BINARY_CHUNK_HEAD = bytes((cbor.IDENTIFIER,)) + cbor.map_head(2) + cbor.encode_text(KEY_PAYLOAD)
_BINARY_SIGNATURE = cbor.encode_text(KEY_SIGNATURE)


#: Chunk plaintext exactly as :func:`encode_chunk` (and the reference) writes it, up to the data.
_CANONICAL_HEAD = re.compile(
    rb'\{"sequencenumber":(0|[1-9][0-9]{0,15}),"messageid":(0|[1-9][0-9]{0,15})'
    rb'(?:,"endofmsg":(true|false))?(?:,"compressionalgo":"([A-Z]{1,16})")?,"data":"'
)


def _canonical_fields(
    plaintext: bytes | bytearray, size: int | None = None
) -> tuple[int, int, bool, str | None, bytes] | None:
    """The fields of a chunk plaintext (``plaintext[:size]``) in canonical form, without
    the general object parser; None for anything else, which the general parser then
    reads with exactly the same result or error."""
    matched = match_canonical(plaintext, _CANONICAL_HEAD, b'"}', size)
    return None if matched is None else _fields(*matched)


def _fields(head: re.Match[bytes], data: bytes) -> tuple[int, int, bool, str | None, bytes]:
    algo: bytes | None = head.group(4)
    end_of_message = head.group(3) == b"true"
    return int(head.group(1)), int(head.group(2)), end_of_message, algo.decode("ascii") if algo else None, data


def _open_symmetric(obj: MslObject, crypto: SymmetricCryptoContext) -> tuple[bytes | bytearray, int]:
    """Verify and decrypt a chunk's payload, letting go of each layer as soon as the next
    is decoded: a large chunk then never holds more than two of its layers at once, and
    freed layers are reused for the next ones instead of returned to the operating
    system and page-faulted back in (which costs more than the cryptography)."""
    payload = obj.get_bytes(KEY_PAYLOAD)
    if not crypto.verify(payload, obj.get_bytes(KEY_SIGNATURE)):
        raise MslMessageException(MslError.PAYLOAD_VERIFICATION_FAILED)
    envelope = CiphertextEnvelope.parse(payload, EnvelopeVersion.V1)
    del payload
    return crypto.decrypt_envelope(envelope)


@dataclass(frozen=True)
class PayloadChunk:
    """A verified and decrypted payload chunk."""

    sequence_number: int
    """1 for the first chunk, +1 per chunk."""
    message_id: int
    """Must equal the header's message ID."""
    end_of_message: bool
    """True on the last chunk."""
    compression_algo: CompressionAlgorithm | None
    """Compression the sender applied, if any."""
    data: bytes = field(repr=False)
    """The application data (decompressed); plaintext, so never in the repr."""

    @classmethod
    def parse(
        cls,
        obj: MslObject,
        crypto: CryptoContext,
        *,
        max_deflate_ratio: int,
        max_data_size: int | None = None,
    ) -> PayloadChunk:
        """Verify, decrypt and parse a chunk (messages.md §6 receiving order)."""
        fast: tuple[int, int, bool, str | None, bytes] | None
        if _fast_symmetric(crypto):
            assert isinstance(crypto, SymmetricCryptoContext)
            streamed = open_large(obj, crypto, _CANONICAL_HEAD)
            if streamed is not None:
                fast = _fields(*streamed)
                plaintext = b""
            else:
                # Read the plaintext where it was decrypted: no copy of a large chunk.
                padded, size = _open_symmetric(obj, crypto)
                fast = _canonical_fields(padded, size)
                plaintext = bytes(memoryview(padded)[:size]) if fast is None else b""
                del padded
        else:
            payload = obj.get_bytes(KEY_PAYLOAD)
            if not crypto.verify(payload, obj.get_bytes(KEY_SIGNATURE)):
                raise MslMessageException(MslError.PAYLOAD_VERIFICATION_FAILED)
            plaintext = crypto.decrypt(payload)
            fast = _canonical_fields(plaintext)
        if fast is not None:
            sequence_number, message_id, end, algo_name, raw = fast
        else:
            try:
                fields = decode(plaintext)
                sequence_number = fields.get_int(KEY_SEQUENCE_NUMBER)
                message_id = fields.get_int(KEY_MESSAGE_ID)
                end = fields.opt_bool(KEY_END_OF_MESSAGE, False)
                algo_name = fields.opt_string(KEY_COMPRESSION_ALGO)
                raw = fields.get_bytes(KEY_DATA)
            except MslEncodingException as exc:
                raise MslEncodingException(MslError.MSL_PARSE_ERROR, exc.detail) from exc
        if not in_range(sequence_number):
            raise MslMessageException(MslError.PAYLOAD_SEQUENCE_NUMBER_OUT_OF_RANGE, str(sequence_number))
        if not in_range(message_id):
            raise MslMessageException(MslError.PAYLOAD_MESSAGE_ID_OUT_OF_RANGE, str(message_id))
        algo = CompressionAlgorithm.from_wire(algo_name) if algo_name is not None else None
        if not raw and not end:
            raise MslMessageException(MslError.PAYLOAD_DATA_MISSING)
        data = raw
        if algo is not None and raw:
            try:
                data = decompress(algo, raw, max_ratio=max_deflate_ratio, max_size=max_data_size)
            except MslException:
                raise
        return cls(sequence_number, message_id, end, algo, data)

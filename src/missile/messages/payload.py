"""Payload chunks (messages.md §6).

Each chunk is independently compressed (optionally), encrypted and signed, so a message
of any length streams chunk by chunk. The layers themselves (plaintext, ciphertext
envelope, signed chunk object) are the business of the payload crypto context's chunk
codec (:meth:`~missile.crypto.context.CryptoContext.chunk_codec`,
:mod:`missile.crypto.chunks`); this module adds what the message layer decides:
compression, ranges, and the meaning of the fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from missile.crypto.chunks import ChunkHead
from missile.crypto.context import CryptoContext
from missile.encoding import EncoderFormat, MslObject, detect_format, encode, in_range
from missile.encoding.compression import DEFAULT_MAX_DEFLATE_RATIO, CompressionAlgorithm, compress, decompress
from missile.errors import MslError, MslInternalException, MslMessageException

__all__ = ["PayloadChunk", "encode_chunk"]

#: Below this size compression saves a few bytes at best (a gzip member alone is 18
#: bytes of framing) and costs more than the rest of the chunk: it is not attempted.
_MIN_COMPRESSIBLE = 128


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
    if compression is not None and len(data) > _MIN_COMPRESSIBLE:
        compressed = compress(compression, bytes(data))
        # Use compression only when smaller, and never beyond the inflate ratio a
        # receiver enforces (encoding.md §8.1: 200 by default in the reference too),
        # or the receiver would refuse the chunk as a decompression bomb.
        if compressed is not None and (max_ratio is None or len(compressed) * max_ratio >= len(data)):
            data, algo = compressed, compression
    head = ChunkHead(sequence_number, message_id, end_of_message, algo.value if algo is not None else None)
    return crypto.chunk_codec(encoder_format).seal(head, data)


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
    def open(
        cls,
        chunk: bytes,
        crypto: CryptoContext,
        *,
        max_deflate_ratio: int,
        max_data_size: int | None = None,
    ) -> PayloadChunk:
        """Verify, decrypt and parse an encoded chunk (messages.md §6 receiving order)."""
        head, raw = crypto.chunk_codec(detect_format(chunk)).open(chunk)
        if not in_range(head.sequence_number):
            raise MslMessageException(MslError.PAYLOAD_SEQUENCE_NUMBER_OUT_OF_RANGE, str(head.sequence_number))
        if not in_range(head.message_id):
            raise MslMessageException(MslError.PAYLOAD_MESSAGE_ID_OUT_OF_RANGE, str(head.message_id))
        name = head.compression_algo
        algo = CompressionAlgorithm.from_wire(name) if name is not None else None
        if not raw and not head.end_of_message:
            raise MslMessageException(MslError.PAYLOAD_DATA_MISSING)
        data = raw
        if algo is not None and raw:
            data = decompress(algo, raw, max_ratio=max_deflate_ratio, max_size=max_data_size)
        return cls(head.sequence_number, head.message_id, head.end_of_message, algo, data)

    @classmethod
    def parse(
        cls,
        obj: MslObject,
        crypto: CryptoContext,
        *,
        max_deflate_ratio: int,
        max_data_size: int | None = None,
    ) -> PayloadChunk:
        """:meth:`open` of a decoded chunk: the bytes it was decoded from when known (the
        outer chunk object is not signed, so a re-encoding means the same otherwise)."""
        chunk = obj.encoded
        if chunk is None:
            chunk = encode(obj, EncoderFormat.MISSILE_CBOR if obj.binary else EncoderFormat.JSON)
        return cls.open(chunk, crypto, max_deflate_ratio=max_deflate_ratio, max_data_size=max_data_size)

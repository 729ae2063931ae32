"""The payload chunk codec of the symmetric contexts: every layer in one pass.

A chunk under a session key is AES-CBC and HMAC (or CMAC) over nested encodings: in JSON
the data is base64 in the plaintext, the ciphertext base64 in the envelope, the envelope
base64 in the chunk. :class:`~missile.crypto.chunks.GeneralChunkCodec` builds and reads
each layer whole through the context's public operations. This codec goes through the
layers itself, with the context's keys: small chunks layer by layer without the general
encoder and decoder, and JSON chunks above :data:`STREAM_THRESHOLD` a slice at a time.
Megabyte temporaries would be fresh memory from the operating system for every chunk,
and page-faulting them in costs more than the cryptography: a large chunk is written
slice by slice, and read through two buffers each thread keeps (its envelope, its
plaintext), so nothing but the result is fresh memory.

It writes exactly the general codec's bytes. On receipt it reads by itself only the
form both codecs write, data first (:mod:`missile.crypto.chunks`); anything else, and
anything that fails once the signature has verified, is handed whole to the general
codec, which then decides: one fallback point, so results and errors are the general
codec's by construction (and by property tests).
"""

from __future__ import annotations

import binascii
import hmac as std_hmac
import itertools
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pybase64
from cryptography.hazmat.primitives import cmac, hmac

from missile.crypto import cbc
from missile.crypto.chunks import KEY_DATA, ChunkCodec, ChunkHead, GeneralChunkCodec, plaintext_parts, read_plaintext
from missile.crypto.context import CryptoContext
from missile.crypto.envelopes import (
    V1_JSON_HEAD,
    SignatureEnvelope,
    read_v1_binary,
    v1_binary_head,
    v1_json_iv_head,
)
from missile.crypto.random import RandomSource
from missile.encoding import EncoderFormat, MslObject, cbor, decode
from missile.encoding.base64 import b64encode_bytes, b64encode_stream, b64encoded_size
from missile.encoding.mslobject import BinaryMslObject
from missile.errors import MslError, MslException, MslMessageException

__all__ = ["STREAM_THRESHOLD", "ChunkKeys", "SymmetricChunkCodec", "signature_tag"]

#: JSON chunks with more data than this are written a slice at a time (and read so when
#: their payload text is twice this). Below it, joining each layer whole costs less than
#: slicing; above it, whole layers are large enough for the allocator to map fresh
#: memory for each.
STREAM_THRESHOLD = 192 * 1024
#: Bytes of data base64-encoded at a time: a multiple of 3, so slices encode
#: independently, and small enough that every temporary stays well below the size at
#: which the allocator maps (and page-faults in) fresh memory for each one.
SLICE = 3 * 8192
#: Base64 characters decoded at a time on receipt (a multiple of 4): the decoded slices
#: stay below the size at which the allocator maps fresh memory for each.
TEXT_SLICE = 4 * 32768
#: The largest buffer a thread keeps for opening large chunks (two are kept: one of the
#: chunk's envelope, one of its plaintext): enough for chunks of two megabytes of data.
SCRATCH_LIMIT = 4 * 1024 * 1024
#: Bytes at the end of a streamed chunk's envelope searched for its key ID and IV (they
#: follow the ciphertext); a key ID too long to fit goes to the general codec.
_ENVELOPE_TAIL = 512
#: Bytes at the end of a streamed chunk's plaintext where its data's base64 must end
#: (the members after it are short); a chunk whose data ends before goes to the general
#: codec.
_DATA_END_WINDOW = 4096

_JSON_CHUNK_HEAD = b'{"payload":"'
_JSON_SIGNATURE = b'","signature":"'
_JSON_CHUNK_TAIL = b'"}'
_JSON_DATA_HEAD = b'{"data":"'
#: A JSON chunk plaintext after its data when it is uncompressed, as written: the message
#: ID, the end-of-message flag if set, the sequence number, in the reference's order.
#: Numbers are plain integers of at most 20 digits (any other form of a JSON number, and
#: anything else, is left to the general decoder).
_JSON_PLAINTEXT_TAIL = re.compile(
    rb'","messageid":(0|[1-9][0-9]{0,19})(,"endofmsg":true)?,"sequencenumber":(0|[1-9][0-9]{0,19})\}'
)
#: The JSON envelope after its ciphertext, as written (printable ASCII key ID, no escapes).
_JSON_ENVELOPE_TAIL = re.compile(rb'","sha256":"AA==","keyid":"[ !#-\[\]-~]*","iv":"([A-Za-z0-9+/]*={0,2})"\}')
_BINARY_CHUNK_HEAD = bytes((cbor.IDENTIFIER,)) + cbor.map_head(2) + cbor.encode_text("payload")
_BINARY_SIGNATURE = cbor.encode_text("signature")
_BINARY_DATA = cbor.encode_text(KEY_DATA)


def signature_tag(signature: bytes) -> bytes:
    """The tag in a signature envelope: the raw (V1) bytes unless they could be a V2 object."""
    return SignatureEnvelope.parse(signature).signature if signature.startswith(b"{") else signature


@dataclass(frozen=True, slots=True)
class ChunkKeys:
    """What the codec needs of a symmetric context (never in a repr: keys)."""

    key_id: str
    cipher: cbc.CbcKey
    mac: hmac.HMAC | cmac.CMAC
    """A MAC under the signature key, copied for every use."""
    random: RandomSource

    def __repr__(self) -> str:
        return f"ChunkKeys(key_id={self.key_id!r})"


class _Handover(Exception):
    """The chunk is not in the form this codec reads itself: the general codec decides."""


def _b64decode(text: bytes | memoryview) -> bytes:
    """Strict base64 (no whitespace, which JSON strings may hold raw only when escaped)."""
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Handover from None


class SymmetricChunkCodec(ChunkCodec):
    """Seals and opens chunks with a symmetric context's keys (see the module docstring)."""

    __slots__ = ("_general", "_iv_head", "_keys", "encoder_format")

    def __init__(self, crypto: CryptoContext, encoder_format: EncoderFormat, keys: ChunkKeys) -> None:
        self._general = GeneralChunkCodec(crypto, encoder_format)
        self._keys = keys
        self.encoder_format = encoder_format
        self._iv_head = v1_json_iv_head(keys.key_id)

    # -- sealing -----------------------------------------------------------------------

    def seal(self, head: ChunkHead, data: bytes | memoryview) -> bytes:
        """See :meth:`ChunkCodec.seal`; the general codec's bytes exactly."""
        iv = self._keys.random.random_bytes(cbc.AES_BLOCK_SIZE)
        if self.encoder_format is EncoderFormat.JSON:
            return self._seal_json(head, data, iv)
        return self._seal_binary(head, data, iv)

    def _seal_json(self, head: ChunkHead, data: bytes | memoryview, iv: bytes) -> bytes:
        keys = self._keys
        prefix, tail = plaintext_parts(head, EncoderFormat.JSON, len(data))
        mac = keys.mac.copy()
        if len(data) <= STREAM_THRESHOLD:
            plaintext = b"".join((prefix, b64encode_bytes(data), tail))
            ciphertext = keys.cipher.encrypt(iv, plaintext)
            envelope = b"".join((V1_JSON_HEAD, b64encode_bytes(ciphertext), self._iv_head, b64encode_bytes(iv), b'"}'))
            mac.update(envelope)
            payload = [b64encode_bytes(envelope)]
        else:
            view = memoryview(data)
            pieces = itertools.chain(
                (prefix,), b64encode_stream(view[i : i + SLICE] for i in range(0, len(view), SLICE)), (tail,)
            )
            size = len(prefix) + b64encoded_size(len(view)) + len(tail)
            envelope_tail = b"".join((self._iv_head, b64encode_bytes(iv), b'"}'))

            def envelope_pieces() -> Iterator[bytes]:
                ciphertext = b64encode_stream(cbc.encrypt_stream(keys.cipher.aes, iv, pieces, size))
                for piece in itertools.chain((V1_JSON_HEAD,), ciphertext, (envelope_tail,)):
                    mac.update(piece)
                    yield piece

            payload = list(b64encode_stream(envelope_pieces()))
        signature = b64encode_bytes(mac.finalize())
        return b"".join((_JSON_CHUNK_HEAD, *payload, _JSON_SIGNATURE, signature, _JSON_CHUNK_TAIL))

    def _seal_binary(self, head: ChunkHead, data: bytes | memoryview, iv: bytes) -> bytes:
        keys = self._keys
        prefix, tail = plaintext_parts(head, EncoderFormat.MISSILE_CBOR, len(data))
        size = len(prefix) + len(data) + len(tail)
        ciphertext = keys.cipher.encrypt_pieces(iv, (prefix, data, tail), size)
        envelope_head = v1_binary_head(keys.key_id, iv, size + len(cbc.pad(size)))
        mac = keys.mac.copy()
        mac.update(envelope_head)
        for piece in ciphertext:
            mac.update(piece)
        signature = mac.finalize()
        envelope_size = len(envelope_head) + size + len(cbc.pad(size))
        return b"".join(
            (
                _BINARY_CHUNK_HEAD,
                cbor.bytes_head(envelope_size),
                envelope_head,
                *ciphertext,
                _BINARY_SIGNATURE,
                cbor.bytes_head(len(signature)),
                signature,
            )
        )

    # -- opening -----------------------------------------------------------------------

    def open(self, chunk: bytes) -> tuple[ChunkHead, bytes]:
        """See :meth:`ChunkCodec.open`; the general codec's result or error exactly."""
        try:
            if chunk.startswith(_JSON_CHUNK_HEAD):
                return self._open_json(chunk)
            if chunk.startswith(_BINARY_CHUNK_HEAD):
                return self._open_binary(chunk)
        except _Handover:
            pass
        return self._general.open(chunk)  # the one fallback point

    def _verify(self, mac: hmac.HMAC | cmac.CMAC, signature: bytes) -> None:
        if not std_hmac.compare_digest(mac.finalize(), signature_tag(signature)):
            raise MslMessageException(MslError.PAYLOAD_VERIFICATION_FAILED)

    def _open_json(self, chunk: bytes) -> tuple[ChunkHead, bytes]:
        """``{"payload":"…","signature":"…"}`` with base64 values and nothing else."""
        # Found from the end (the signature is short): base64 holds no quote, so in any
        # chunk read here this is also the first quote after the head.
        middle = chunk.rfind(_JSON_SIGNATURE, len(_JSON_CHUNK_HEAD))
        if middle < 0 or not chunk.endswith(_JSON_CHUNK_TAIL):
            raise _Handover
        view = memoryview(chunk)
        signature = _b64decode(view[middle + len(_JSON_SIGNATURE) : -len(_JSON_CHUNK_TAIL)])
        text = view[len(_JSON_CHUNK_HEAD) : middle]
        if len(text) > 2 * STREAM_THRESHOLD:
            return self._open_json_streamed(text, signature)
        envelope = _b64decode(text)
        mac = self._keys.mac.copy()
        mac.update(envelope)
        self._verify(mac, signature)
        try:
            if not envelope.startswith(V1_JSON_HEAD):
                raise _Handover
            end = envelope.find(b'"', len(V1_JSON_HEAD))
            tail = _JSON_ENVELOPE_TAIL.fullmatch(envelope, end) if end > 0 else None
            if tail is None:
                raise _Handover
            iv = _b64decode(tail.group(1))
            ciphertext = _b64decode(memoryview(envelope)[len(V1_JSON_HEAD) : end])
            plain, size = self._keys.cipher.decrypt(iv, ciphertext)
            return _json_plaintext(plain, size, 0)
        except MslException:
            raise _Handover from None

    def _open_json_streamed(self, text: memoryview, signature: bytes) -> tuple[ChunkHead, bytes]:
        """:meth:`_open_json` of a large chunk: the envelope decoded a slice at a time
        into a buffer of this thread and MACed, then its ciphertext decoded a slice at a
        time and decrypted into a second one, then the data decoded whole. Nothing but
        the data is fresh memory (see the module docstring)."""
        keys = self._keys
        envelope = _scratch("envelope", len(text) // 4 * 3)
        mac = keys.mac.copy()
        envelope_size = 0
        for piece in _decoded_slices(text):
            mac.update(piece)
            envelope[envelope_size : envelope_size + len(piece)] = piece
            envelope_size += len(piece)
        self._verify(mac, signature)
        if not envelope.startswith(V1_JSON_HEAD, 0, envelope_size):
            raise _Handover
        end_at = envelope_size - _ENVELOPE_TAIL
        at = envelope.rfind(b'","sha256":"', max(end_at, len(V1_JSON_HEAD)), envelope_size)
        tail = _JSON_ENVELOPE_TAIL.fullmatch(envelope, at, envelope_size) if at >= 0 else None
        if tail is None:
            raise _Handover
        try:
            iv = _b64decode(tail.group(1))
            ciphertext = _decoded_slices(memoryview(envelope)[len(V1_JSON_HEAD) : at])
            plain = _scratch("plaintext", (at - len(V1_JSON_HEAD)) // 4 * 3 + cbc.AES_BLOCK_SIZE)
            size = cbc.decrypt_into(keys.cipher.aes, iv, ciphertext, plain)
            return _json_plaintext(plain, size, size - _DATA_END_WINDOW)
        except MslException:
            raise _Handover from None

    def _open_binary(self, chunk: bytes) -> tuple[ChunkHead, bytes]:
        """``{"payload": h'…', "signature": h'…'}``, the payload a binary V1 envelope
        with a 16-byte IV (:func:`~missile.crypto.envelopes.read_v1_binary`); nothing is
        copied but the data."""
        size, start = _byte_string_head(chunk, len(_BINARY_CHUNK_HEAD))
        stop = start + size
        if not chunk.startswith(_BINARY_SIGNATURE, stop):
            raise _Handover
        size, at = _byte_string_head(chunk, stop + len(_BINARY_SIGNATURE))
        if at + size != len(chunk):
            raise _Handover
        view = memoryview(chunk)
        mac = self._keys.mac.copy()
        mac.update(view[start:stop])  # type: ignore[arg-type]  # any buffer (CMAC's stub says bytes)
        self._verify(mac, chunk[at:])
        envelope = read_v1_binary(chunk, start, stop)
        if envelope is None:
            raise _Handover
        iv, at = envelope
        try:
            plain, size = self._keys.cipher.decrypt(iv, view[at:stop])
            return _binary_plaintext(plain, size)
        except (MslException, UnicodeDecodeError):
            raise _Handover from None


def _decoded_slices(text: memoryview) -> Iterator[bytes]:
    """Strict base64 of ``text`` decoded :data:`TEXT_SLICE` characters at a time
    (padding only at the very end)."""
    if len(text) % 4:
        raise _Handover
    last = len(text) - TEXT_SLICE
    for i in range(0, len(text), TEXT_SLICE):
        piece = _b64decode(text[i : i + TEXT_SLICE])
        if i < last and len(piece) != TEXT_SLICE // 4 * 3:  # padded before the end
            raise _Handover
        yield piece


_buffers = threading.local()


def _scratch(name: str, size: int) -> bytearray:
    """A buffer of at least ``size`` bytes, the same one for every call of this thread
    with this ``name`` while it is large enough (none held above
    :data:`SCRATCH_LIMIT`). Only one chunk is opened at a time per thread (opening
    never awaits), so a buffer is never in use twice."""
    buffer: bytearray | None = getattr(_buffers, name, None)
    if buffer is None or len(buffer) < size:
        buffer = bytearray(size)
        if size <= SCRATCH_LIMIT:
            setattr(_buffers, name, buffer)
    return buffer


def _byte_string_head(data: bytes | bytearray | memoryview, at: int) -> tuple[int, int]:
    """The size of the byte string whose head is at ``at`` and where its bytes start."""
    head = cbor.minimal_head(data, at, 2)
    if head is None:
        raise _Handover
    return head


def _byte_string(data: memoryview, at: int) -> tuple[memoryview, int]:
    """The byte string whose head is at ``at`` and the position after it."""
    try:
        major, size, at = cbor.read_head(data, at)
    except MslException:
        raise _Handover from None
    if major != 2 or at + size > len(data):
        raise _Handover
    return data[at : at + size], at + size


def _json_plaintext(plain: bytes | bytearray, size: int, quote_from: int) -> tuple[ChunkHead, bytes]:
    """The chunk of the JSON plaintext ``plain[:size]`` when its data comes first: read by
    one match when the members after it are the usual ones, as written, else by
    :func:`_json_fields`. The data's closing quote is looked for from ``quote_from`` on
    (a quote before it is no base64: refused when the data is decoded)."""
    if not plain.startswith(_JSON_DATA_HEAD, 0, size):
        raise _Handover
    end = plain.find(b'"', max(len(_JSON_DATA_HEAD), quote_from), size)
    if end < 0:
        raise _Handover
    data = _b64decode(memoryview(plain)[len(_JSON_DATA_HEAD) : end])
    tail = _JSON_PLAINTEXT_TAIL.fullmatch(plain, end, size)
    if tail is not None:
        return ChunkHead(int(tail.group(3)), int(tail.group(1)), tail.group(2) is not None), data
    return _json_fields(data, bytes(plain[end + 1 : size]))


def _json_fields(data: bytes, rest: bytes) -> tuple[ChunkHead, bytes]:
    """The chunk of a JSON plaintext ``{"data":"…"`` + ``rest``: ``rest`` must be
    ``,`` and at least one more member, then ``}``; read with the general decoder."""
    if not rest.startswith(b","):
        raise _Handover
    fields = decode(b"{" + rest[1:]).to_dict()
    if not fields or KEY_DATA in fields:  # '{"data":"…",}' is no JSON; a second "data" neither
        raise _Handover
    fields[KEY_DATA] = data
    return read_plaintext(MslObject(fields))


_UINT = cbor.MINIMAL_UINT
#: The members of a binary chunk plaintext after its data, when it is uncompressed: the
#: end-of-message flag if set, the message ID, the sequence number (their keys' order).
_BINARY_PLAINTEXT_TAIL = re.compile(
    b"(%s)?%s(%s)%s(%s)"
    % (
        re.escape(cbor.encode_text("endofmsg") + b"\xf5"),
        re.escape(cbor.encode_text("messageid")),
        _UINT,
        re.escape(cbor.encode_text("sequencenumber")),
        _UINT,
    ),
    re.DOTALL,
)


_uint = cbor.minimal_uint_value


def _binary_plaintext(plain: bytes | bytearray, size: int) -> tuple[ChunkHead, bytes]:
    """The chunk of the binary plaintext ``plain[:size]``: read by one match when it has
    the shape of an uncompressed chunk (data, end-of-message flag if set, message ID,
    sequence number, every head minimal: what the general decoder reads the same way),
    else by :func:`_binary_fields`."""
    count = plain[1] - 0xA3 if size > 2 and plain[0] == cbor.IDENTIFIER else -1
    if (count == 0 or count == 1) and plain.startswith(_BINARY_DATA, 2):
        n, at = _byte_string_head(plain, 2 + len(_BINARY_DATA))
        tail = _BINARY_PLAINTEXT_TAIL.fullmatch(plain, at + n, size)
        if tail is not None and (tail.group(1) is not None) == count:
            data = plain[at : at + n] if type(plain) is bytes else bytes(memoryview(plain)[at : at + n])
            return ChunkHead(_uint(tail.group(3)), _uint(tail.group(2)), bool(count)), data
    return _binary_fields(memoryview(plain)[:size])


def _binary_fields(plain: memoryview) -> tuple[ChunkHead, bytes]:
    """The chunk of a binary plaintext whose first member is its data; the members after
    the data are read with the general decoder, then checked to sort after ``data``."""
    if not plain or plain[0] != cbor.IDENTIFIER:
        raise _Handover
    major, count, at = cbor.read_head(plain, 1)
    if major != 5 or not count or plain[at : at + len(_BINARY_DATA)] != _BINARY_DATA:
        raise _Handover
    data, at = _byte_string(plain, at + len(_BINARY_DATA))
    rest = bytes(plain[at:])
    if rest and rest <= _BINARY_DATA:  # keys sort strictly after "data" (bytewise, encoded)
        raise _Handover
    fields = cbor.decode_value(bytes((cbor.IDENTIFIER,)) + cbor.map_head(count - 1) + rest)
    if KEY_DATA in fields:
        raise _Handover
    fields[KEY_DATA] = bytes(data)
    return read_plaintext(BinaryMslObject(fields))

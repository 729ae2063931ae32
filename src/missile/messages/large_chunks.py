"""Large payload chunks, streamed through their layers in slices.

A payload chunk nests its data three base64 layers deep: the data in the plaintext, the
ciphertext in the envelope, the envelope in the chunk. Done a layer at a time, a 1 MiB
chunk makes megabyte-sized temporaries that the allocator maps fresh (and gives back)
for every chunk, and page-faulting them in costs more than the cryptography. Here every
layer is produced or consumed a slice at a time, so nothing but the result is ever as
large as the chunk.

Both directions apply only to a stock :class:`SymmetricCryptoContext` (the session
context of every master token) and give exactly the bytes, results and errors of the
general path in :mod:`missile.messages.payload`: the sender's output is byte-identical;
the receiver hands anything that is not in the canonical form missile and the reference
write (or that fails after the MAC check) back to the general path, which then decides.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

from missile.crypto.envelopes import V1_HEAD, V1_TAIL
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MslObject
from missile.encoding.base64 import (
    b64decode,
    b64decode_stream,
    b64encode_bytes,
    b64encode_stream,
    b64encoded_size,
)
from missile.errors import MslError, MslException, MslMessageException

__all__ = ["STREAM_THRESHOLD", "encode_large", "open_large"]

#: Data above this size is streamed. Below it, joining each layer whole costs less than
#: slicing; above it, whole layers are large enough for the allocator to map fresh
#: memory for each.
STREAM_THRESHOLD = 192 * 1024
#: Bytes of data base64-encoded at a time: a multiple of 3, so slices encode
#: independently, and small enough that every temporary stays well below the size at
#: which the allocator maps (and page-faults in) fresh memory for each one.
SLICE = 3 * 8192
#: Base64 characters decoded at a time on receipt (a multiple of 4).
TEXT_SLICE = 4 * 24576

_TAIL = b'"}'


def encode_large(crypto: SymmetricCryptoContext, head: bytes, data: bytes | memoryview) -> bytes:
    """The chunk whose plaintext is ``head``, the base64 of ``data`` and ``"}``: every
    layer (base64 of the data, encryption, base64 of the ciphertext, the MAC, base64 of
    the envelope) streamed in slices. The bytes are exactly those of the general path."""
    view = memoryview(data)
    plaintext = itertools.chain(
        (head,),
        b64encode_stream(view[i : i + SLICE] for i in range(0, len(view), SLICE)),
        (_TAIL,),
    )
    size = len(head) + b64encoded_size(len(view)) + len(_TAIL)
    mac = crypto.signer()

    def envelope() -> Iterator[bytes]:
        for piece in crypto.encrypt_stream(plaintext, size):
            mac.update(piece)
            yield piece

    payload = list(b64encode_stream(envelope()))
    signature = b64encode_bytes(mac.finalize())
    return b"".join((b'{"payload":"', *payload, b'","signature":"', signature, b'"}'))


def open_large(
    obj: MslObject, crypto: SymmetricCryptoContext, plaintext_head: re.Pattern[bytes]
) -> tuple[re.Match[bytes], bytes] | None:
    """Verify and decrypt a large chunk in canonical form, slice by slice: the match of
    ``plaintext_head`` on the plaintext and the decoded data. A MAC that does not verify
    raises PAYLOAD_VERIFICATION_FAILED, as the general path would; anything else that is
    not canonical or not valid gives None, and the general path decides."""
    text = obj.raw_text("payload")
    if text is None or len(text) <= 2 * STREAM_THRESHOLD or len(text) % 4:
        return None
    try:
        signature = obj.get_bytes("signature")
        mac = crypto.signer()
        for piece in b64decode_stream(_slices(text)):
            mac.update(piece)
    except MslException:
        return None
    if not crypto.verify_signer(mac, signature):
        raise MslMessageException(MslError.PAYLOAD_VERIFICATION_FAILED)
    try:
        return _decrypt(text, crypto, plaintext_head)
    except MslException:
        return None


def _slices(text: memoryview) -> Iterator[memoryview]:
    return (text[i : i + TEXT_SLICE] for i in range(0, len(text), TEXT_SLICE))


class _NotCanonical(MslException):
    def __init__(self) -> None:
        super().__init__(MslError.MSL_PARSE_ERROR, "not in canonical form")


def _decrypt(
    text: memoryview, crypto: SymmetricCryptoContext, plaintext_head: re.Pattern[bytes]
) -> tuple[re.Match[bytes], bytes]:
    envelope = b64decode_stream(_slices(text))
    size = len(text) // 4 * 3 - (text[-1] == 0x3D) - (text[-2] == 0x3D)  # '=' padding
    first = next(envelope, b"")
    head = V1_HEAD.match(first)
    if head is None:
        raise _NotCanonical
    iv = b64decode(head.group(2))
    start, end = head.end(), size - len(V1_TAIL)
    if end < start:
        raise _NotCanonical

    def ciphertext_text() -> Iterator[bytes | memoryview]:
        """The base64 ciphertext within the envelope; checks what follows it."""
        offset = 0
        tail = b""
        for piece in itertools.chain((first,), envelope):
            lo, hi = max(start - offset, 0), min(end - offset, len(piece))
            if lo < hi:
                yield memoryview(piece)[lo:hi]
            if offset + len(piece) > end:
                tail += piece[max(end - offset, 0) :]
            offset += len(piece)
        if offset != size or tail != V1_TAIL:
            raise _NotCanonical

    plaintext = crypto.decrypt_stream(iv, b64decode_stream(ciphertext_text()))
    lead = b""
    for piece in plaintext:
        lead += piece
        if len(lead) >= 256:
            break
    match = plaintext_head.match(lead)
    if match is None:
        raise _NotCanonical

    def data_text() -> Iterator[bytes | memoryview]:
        """The base64 data: the plaintext after its head, but for the closing ``"}``."""
        held = lead[match.end() :]
        for piece in plaintext:
            if len(held) > len(_TAIL):
                yield held[: -len(_TAIL)]
                held = held[-len(_TAIL) :]
            held += piece
        if not held.endswith(_TAIL):
            raise _NotCanonical
        yield held[: -len(_TAIL)]

    data = b"".join(b64decode_stream(data_text()))
    return match, data

"""The crypto-context interface (crypto.md §1).

A crypto context performs the six protection operations MSL uses. All inputs and
outputs are bytes already in their wire form: ``encrypt`` returns ciphertext-envelope
bytes, ``sign`` returns signature-envelope bytes. ``verify`` returns False for a bad
signature and raises :class:`~missile.errors.MslCryptoException` only for operational
failures. An operation a context cannot perform raises the matching ``*_NOT_SUPPORTED``
error.

Headers, error headers and tokens need the envelope in the encoder format of the
message being written (the signature covers the bytes as sent):
:meth:`CryptoContext.encrypt_in_format` gives it. By default it rewrites what
``encrypt`` returned (:func:`~missile.crypto.envelopes.envelope_in_format`); a context
that writes V1 envelopes itself may write the requested format directly, to the same
bytes, sparing the parse and re-encoding of an envelope it has just written.

A context also offers the codec its payload chunks are sealed and opened with
(:meth:`CryptoContext.chunk_codec`): by default the general one, built on the six
operations; a context may return a faster one that writes and reads the same bytes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from missile.crypto.envelopes import envelope_in_format

if TYPE_CHECKING:
    from missile.crypto.chunks import ChunkCodec
    from missile.encoding import EncoderFormat


class CryptoContext(ABC):
    """Encrypt, decrypt, wrap, unwrap, sign and verify byte strings."""

    @abstractmethod
    def encrypt(self, data: bytes) -> bytes:
        """Encrypt ``data``; returns the encoded ciphertext envelope (or ``data`` for pass-through)."""

    @abstractmethod
    def decrypt(self, data: bytes) -> bytes:
        """Decrypt an encoded ciphertext envelope produced by :meth:`encrypt`."""

    @abstractmethod
    def wrap(self, data: bytes) -> bytes:
        """Wrap key material; the result has no envelope."""

    @abstractmethod
    def unwrap(self, data: bytes) -> bytes:
        """Unwrap data produced by :meth:`wrap`."""

    @abstractmethod
    def sign(self, data: bytes) -> bytes:
        """Return the signature envelope over ``data``."""

    @abstractmethod
    def verify(self, data: bytes, signature: bytes) -> bool:
        """True when ``signature`` is a valid signature envelope over ``data``."""

    def encrypt_in_format(self, data: bytes, encoder_format: EncoderFormat) -> bytes:
        """:meth:`encrypt` with the envelope written in ``encoder_format``
        (docs/binary-format.md §5.1); what ``encrypt`` returns when it is not a JSON V1
        envelope (a pass-through context's data) is returned as it is."""
        return envelope_in_format(self.encrypt(data), encoder_format)

    def chunk_codec(self, encoder_format: EncoderFormat) -> ChunkCodec:
        """The codec that seals and opens payload chunks in ``encoder_format`` under this
        context: the general one (messages.md §6 done with :meth:`encrypt`, :meth:`sign`,
        :meth:`verify` and :meth:`decrypt`) unless a context offers its own."""
        from missile.crypto.chunks import GeneralChunkCodec  # the codec builds on this module

        return GeneralChunkCodec(self, encoder_format)

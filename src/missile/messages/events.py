"""Events produced by the sans-IO :class:`~missile.messages.reader.MessageReader`."""

from __future__ import annotations

from dataclasses import dataclass, field

from missile.crypto.context import CryptoContext
from missile.messages.error_header import ErrorHeader
from missile.messages.header import MessageHeader
from missile.messages.payload import PayloadChunk


class Event:
    """Base class of reader events."""


@dataclass(frozen=True)
class HeaderReceived(Event):
    """A message header arrived, authenticated, decrypted and validated."""

    header: MessageHeader
    """The parsed header."""
    payload_crypto_context: CryptoContext = field(repr=False)
    """The context that protects this message's payload chunks."""
    key_exchange_crypto_context: CryptoContext | None = field(default=None, repr=False)
    """The session context derived from key response data, if any."""


@dataclass(frozen=True)
class ErrorReceived(Event):
    """An error header arrived (no payload follows)."""

    error_header: ErrorHeader
    """The parsed error header."""


@dataclass(frozen=True)
class PayloadReceived(Event):
    """A payload chunk arrived, verified and decrypted."""

    chunk: PayloadChunk
    """The chunk; ``chunk.data`` is the application data."""

    @property
    def data(self) -> bytes:
        """The application data of this chunk."""
        return self.chunk.data


@dataclass(frozen=True)
class MessageEnd(Event):
    """The message is complete (end-of-message chunk, or the stream ended after the header)."""

"""A message payload being received: chunks handed out as each one verifies."""

from __future__ import annotations

from collections.abc import AsyncIterator

from missile.engine.message_io import read_payload, read_rest
from missile.engine.transport import Channel
from missile.messages.reader import MessageReader

__all__ = ["MessageBody"]


class MessageBody:
    """The rest of a message on a channel whose header has been read.

    Iterate it (``async for chunk in body``) to get the payload chunk by chunk without
    buffering the message; a chunk that fails verification raises its MslError.
    """

    def __init__(self, reader: MessageReader, channel: Channel, pending: list[bytes]) -> None:
        self._reader = reader
        self._channel = channel
        self._pending = pending

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        async for chunk in read_payload(self._channel, self._reader, self._pending):
            yield chunk

    async def read(self, limit: int | None = None) -> bytes:
        """The whole remaining payload; more than ``limit`` bytes is MESSAGE_FORMAT_ERROR."""
        return await read_rest(self._channel, self._reader, self._pending, limit)

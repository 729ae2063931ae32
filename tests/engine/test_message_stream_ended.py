"""MessageStream.ended reads ahead at most once and loses nothing (engine/message_io.py):
the client asks it before building a reader for a pushed message."""

from __future__ import annotations

import asyncio

from missile.engine.message_io import MessageStream


class _Scripted:
    """A channel giving the scripted pieces, then b"" forever; counts its reads."""

    one_exchange = True

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = list(pieces)
        self.reads = 0

    async def read(self, n: int = 65536) -> bytes:
        self.reads += 1
        return self.pieces.pop(0) if self.pieces else b""

    async def write(self, data: bytes) -> None:
        raise AssertionError("not written")

    async def finish(self) -> None:
        pass

    async def close(self) -> None:
        pass


def test_ended_at_once_on_an_empty_channel() -> None:
    async def run() -> None:
        channel = _Scripted()
        stream = MessageStream(channel)
        assert await stream.ended()
        assert await stream.ended() and stream.at_eof
        assert await stream.read() == b""
        assert channel.reads == 1

    asyncio.run(run())


def test_bytes_read_ahead_come_back_first() -> None:
    async def run() -> None:
        channel = _Scripted(b"  {", b"rest")
        stream = MessageStream(channel)
        assert not await stream.ended()
        assert not await stream.ended()  # asking again reads nothing more
        assert channel.reads == 1 and not stream.at_eof
        assert await stream.read() == b"  {"
        assert await stream.read() == b"rest"
        assert await stream.ended()
        assert await stream.read() == b""

    asyncio.run(run())

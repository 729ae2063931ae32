"""The 12-message limit (control.md §6): a server that never lets the client succeed."""

from __future__ import annotations

import pytest

from missile.engine.client import MAX_MESSAGES
from missile.engine.errors import MslErrorResponse, MslMessageLimitExceeded
from missile.engine.transport import Channel, LoopbackTransport
from missile.errors import ResponseCode
from missile.messages.error_header import ErrorHeader
from missile.messages.reader import MessageReader

from .harness import make_pair, run


class AlwaysError:
    """A stub server answering every request with the same (recoverable) error code."""

    def __init__(self, ctx: object, code: ResponseCode) -> None:
        self.ctx = ctx
        self.code = code
        self.request_ids: list[int] = []
        self.error_ids: list[int] = []

    async def __call__(self, channel: Channel) -> None:
        data = b""
        while chunk := await channel.read():
            data += chunk
        reader = MessageReader(self.ctx)  # type: ignore[arg-type]
        reader.feed(data)
        assert reader.header is not None
        self.request_ids.append(reader.header.message_id)
        ead = reader.ctx.get_entity_auth_data()
        assert ead is not None
        error = ErrorHeader.create(reader.ctx, ead, reader.header.message_id + 1, self.code)
        self.error_ids.append(error.message_id)
        await channel.write(error.encode())
        await channel.finish()


@pytest.mark.parametrize("code", [ResponseCode.REPLAYED, ResponseCode.EXPIRED])
def test_message_limit_stops_endless_recovery(code: ResponseCode) -> None:
    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED")
        await p.client.request(b"establish")  # a session, so EXPIRED has a token to renew
        stub = AlwaysError(p.server_ctx, code)
        transport = LoopbackTransport(stub)
        p.client.transport = transport
        with pytest.raises(MslMessageLimitExceeded) as info:
            await p.client.request(b"never")
        assert transport.connections == MAX_MESSAGES // 2 == 6
        last = info.value.last_error
        assert isinstance(last, MslErrorResponse) and last.response_code is code
        # Each resend answered the previous error: ID = error ID + 1.
        assert stub.request_ids[1:] == [e + 1 for e in stub.error_ids[:-1]]
        # The client is still usable with a healthy server.
        p.client.transport = p.transport
        assert (await p.client.request(b"ok")).payload == b"echo ok (client1/-)"

    run(go())


def test_message_limit_counts_handshake_round_trips() -> None:
    """A NONE client needs a handshake; with a budget of 2 it cannot send its data."""

    async def go() -> None:
        p = make_pair("NONE", "DIFFIE_HELLMAN", client_kwargs={"max_messages": 2})
        with pytest.raises(MslMessageLimitExceeded):
            await p.client.request(b"x")
        assert p.transport.connections == 1 and p.seen[0].handshake
        assert p.handled == []

    run(go())

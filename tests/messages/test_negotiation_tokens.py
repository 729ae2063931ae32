"""Tokens across encoder formats, through the engines (docs/binary-format.md §7, §8).

A server answering in the binary format issues binary tokens (master token, user ID
token); one answering in JSON issues JSON tokens, so a party that never advertised the
binary format never receives binary data, tokens included. Tokens travel as issued in
messages of either format: a JSON token is renewed in a binary exchange, and a binary
token keeps working after its server stops writing the binary format."""

from __future__ import annotations

from engine.harness import HOUR_MS, USER1, Pair, echo, make_pair, run
from missile.encoding import EncoderFormat
from missile.engine.options import MessageOptions
from missile.engine.server import MslServer
from missile.messages.capabilities import DEFAULT_CAPABILITIES, MessageCapabilities
from missile.tokens.factory import DAY_MS, TokenFactory
from missile.tokens.master import MasterToken
from missile.userauth.email_password import EmailPasswordAuthData

BIN = EncoderFormat.MISSILE_CBOR
JSON = EncoderFormat.JSON
JSON_ONLY = MessageCapabilities.of(["GZIP", "LZW"], ["en-US"], ["JSON"])
ALICE = MessageOptions(user_id="alice", user_auth=EmailPasswordAuthData(*USER1))


def _pair(client_caps: MessageCapabilities = DEFAULT_CAPABILITIES, **factory: int) -> Pair:
    return make_pair(
        token_factory=TokenFactory(**factory),  # type: ignore[arg-type]
        server_kwargs={"capabilities": DEFAULT_CAPABILITIES},
        client_kwargs={"capabilities": client_caps},
    )


def _format(data: bytes) -> EncoderFormat:
    return BIN if data[0] == BIN.identifier else JSON


def _tokens(p: Pair) -> tuple[MasterToken, EncoderFormat, EncoderFormat]:
    """The client's master token, its format and its user ID token's format."""
    mt = p.store.get_master_token()
    uit = p.store.get_user_id_token("alice")
    assert mt is not None and uit is not None
    return mt, _format(mt.tokendata), _format(uit.tokendata)


def _requests(p: Pair) -> list[EncoderFormat]:
    return [s.request.encoder_format for s in p.seen if s.request is not None]


def _responses(p: Pair) -> list[EncoderFormat]:
    return [_format(s.response_bytes) for s in p.seen]


def test_a_binary_response_issues_binary_tokens() -> None:
    async def go() -> None:
        p = _pair()
        assert (await p.client.request(b"one", ALICE)).payload == b"echo one (client1/user1@foo.com)"
        _, mt_format, uit_format = _tokens(p)
        # The first request is JSON (the server was never heard from), but it advertised
        # the binary format: the response and the tokens it issues are binary.
        assert (mt_format, uit_format) == (BIN, BIN)
        assert (await p.client.request(b"two", ALICE)).payload == b"echo two (client1/user1@foo.com)"
        assert _requests(p) == [JSON, BIN] and _responses(p) == [BIN, BIN]
        assert p.handled[1].header.master_token.tokendata[0] == BIN.identifier  # type: ignore[union-attr]

    run(go())


def test_a_client_that_never_advertised_binary_gets_json_tokens() -> None:
    async def go() -> None:
        p = _pair(JSON_ONLY)
        for i in range(2):
            await p.client.request(b"%d" % i, ALICE)
        assert _tokens(p)[1:] == (JSON, JSON)
        assert _requests(p) == [JSON, JSON] and _responses(p) == [JSON, JSON]
        # Nothing binary anywhere in what the server wrote.
        assert all(BIN.identifier not in s.response_bytes[:1] for s in p.seen)

    run(go())


def test_a_json_issued_token_is_renewed_in_a_binary_exchange() -> None:
    async def go() -> None:
        p = _pair(master_token_renewal_ms=HOUR_MS, master_token_expiration_ms=DAY_MS)
        p.server.capabilities = JSON_ONLY  # the server before it learned the binary format
        await p.client.request(b"setup", ALICE)
        old, old_format, _ = _tokens(p)
        assert old_format is JSON
        p.server.capabilities = DEFAULT_CAPABILITIES  # upgraded, same keys and token state
        await p.client.request(b"learn", ALICE)  # JSON request, binary answer
        await p.client.request(b"use", ALICE)  # binary request under the JSON token
        assert p.seen[-1].request is not None and p.seen[-1].request.master_token == old
        assert _format(p.seen[-1].request.master_token.tokendata) is JSON  # carried as issued
        p.clock.advance(HOUR_MS + 1000)
        response = await p.client.request(b"renew", ALICE)
        assert response.header.data.key_response_data is not None
        new, new_format, _ = _tokens(p)
        assert new_format is BIN
        assert (new.serial_number, new.sequence_number) == (old.serial_number, old.sequence_number + 1)
        assert (await p.client.request(b"after", ALICE)).payload == b"echo after (client1/user1@foo.com)"
        assert _requests(p) == [JSON, JSON, BIN, BIN, BIN]
        assert p.seen[-1].request is not None and p.seen[-1].request.master_token == new

    run(go())


def test_a_binary_token_keeps_working_after_the_server_stops_writing_binary() -> None:
    """A redeployed server that no longer advertises the binary format (a rollback of its
    configuration) still reads it, so the client's binary request under its binary token
    is answered, in JSON; the client writes JSON from then on, carrying the binary token
    as issued, and the token's renewal is JSON. No error, no re-authentication."""

    async def go() -> None:
        p = _pair(master_token_renewal_ms=HOUR_MS, master_token_expiration_ms=DAY_MS)
        await p.client.request(b"one", ALICE)
        await p.client.request(b"two", ALICE)
        issued, issued_format, _ = _tokens(p)
        assert issued_format is BIN
        # Redeployed without the binary format: a new engine, same keys and token state.
        p.server = MslServer(p.server_ctx, echo, capabilities=JSON_ONLY)
        p.recorder.serve = p.server.serve_channel
        assert (await p.client.request(b"three", ALICE)).payload == b"echo three (client1/user1@foo.com)"
        assert (await p.client.request(b"four", ALICE)).payload == b"echo four (client1/user1@foo.com)"
        assert _requests(p) == [JSON, BIN, BIN, JSON] and _responses(p) == [BIN, BIN, JSON, JSON]
        last = p.seen[-1].request
        assert last is not None and last.master_token == issued and last.entity_auth_data is None
        p.clock.advance(HOUR_MS + 1000)
        await p.client.request(b"renew", ALICE)
        renewed, renewed_format, _ = _tokens(p)
        assert renewed.serial_number == issued.serial_number and renewed_format is JSON
        assert _responses(p)[-1] is JSON
        assert all(s.request is not None and s.request.entity_auth_data is None for s in p.seen[1:])

    run(go())

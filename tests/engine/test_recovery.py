"""Recovery from every response code, provoked for real where the stack can produce it
(errors.md §2, §3; control.md §3.5). Each resend uses message ID = error ID + 1."""

from __future__ import annotations

import asyncio

import pytest

from missile.clock import FixedClock
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.engine.errors import MslErrorResponse
from missile.engine.options import MessageOptions
from missile.engine.server import Reply, Request, RequestRejected
from missile.engine.transport import Channel, LoopbackTransport
from missile.entityauth.psk import PskEntityAuthData
from missile.entityauth.rsa import RsaEntityAuthData
from missile.errors import MslError, MslException, ResponseCode
from missile.messages.error_header import ErrorHeader
from missile.messages.reader import MessageReader
from missile.stores.memory import InMemoryStore
from missile.tokens.master import MasterToken
from missile.userauth.base import UserAuthData
from missile.userauth.email_password import EmailPasswordAuthData

from .harness import T0, USER1, USER2, Pair, Seen, client_context, error_of, make_pair, run


def _check_resend(p: Pair, failed: Seen, resent: Seen, code: ResponseCode) -> ErrorHeader:
    """``failed`` got an error with ``code``; ``resent`` is its resend (ID = error ID + 1)."""
    error = error_of(failed, p.client_ctx)
    assert error is not None and error.error_code is code, error
    assert resent.request is not None
    assert resent.request.message_id == error.message_id + 1
    return error


def test_entity_reauth_after_master_token_revocation() -> None:
    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED")
        options = MessageOptions(user_id="alice", user_auth=EmailPasswordAuthData(*USER1))
        await p.client.request(b"a", options)
        old = p.store.get_master_token()
        assert old is not None and p.store.get_user_id_token("alice") is not None
        await p.factory.revoke_master_token(old.serial_number)

        response = await p.client.request(b"b", options)
        assert response.payload == b"echo b (client1/user1@foo.com)"
        assert response.messages == 4
        failed, resent = p.seen[-2], p.seen[-1]
        error = _check_resend(p, failed, resent, ResponseCode.ENTITY_REAUTH)
        assert error.error is MslError.MASTERTOKEN_IDENTITY_REVOKED
        assert failed.request is not None and failed.request.master_token == old
        # Resent with entity auth data and key request data, no master token.
        assert resent.request is not None and resent.request.master_token is None
        assert resent.request.entity_auth_data is not None and resent.request.data.key_request_data
        assert resent.request.data.user_id_token is None and resent.request.data.user_auth_data is not None
        new = p.store.get_master_token()
        assert new is not None and new.serial_number != old.serial_number
        assert p.store.get_crypto_context(old) is None
        uit = p.store.get_user_id_token("alice")
        assert uit is not None and uit.is_bound_to(new)

    run(go())


def test_entity_reauth_after_server_changes_token_keys() -> None:
    """A brand-new server (new MSL token keys) cannot open the client's master token."""

    async def go() -> None:
        p = make_pair("PSK", "ASYMMETRIC_WRAPPED/RSA")
        await p.client.request(b"a")
        old = p.store.get_master_token()
        assert old is not None
        p.restart_server(msl_crypto=SymmetricCryptoContext("server1", bytes(16), bytes(32), bytes(16)))
        response = await p.client.request(b"b")
        assert response.payload == b"echo b (client1/-)"
        failed, resent = p.seen[-2], p.seen[-1]
        error = _check_resend(p, failed, resent, ResponseCode.ENTITY_REAUTH)
        assert error.error is MslError.MASTERTOKEN_UNTRUSTED
        new = p.store.get_master_token()
        assert new is not None and new != old and p.store.get_crypto_context(old) is None

    run(go())


def test_entitydata_reauth_rsa_key_unknown_to_server() -> None:
    """An RSA client first uses a key pair ID the server does not know; on
    ENTITYDATA_REAUTH its context supplies the known one."""

    async def go() -> None:
        asked: list[ResponseCode | None] = []
        good = RsaEntityAuthData("rsaclient1", "rsaclientkey1")
        stale = RsaEntityAuthData("rsaclient1", "rsaclientkey-old")

        def provider(code: ResponseCode | None) -> RsaEntityAuthData:
            asked.append(code)
            return good if ResponseCode.ENTITYDATA_REAUTH in asked else stale

        p = make_pair("RSA", "ASYMMETRIC_WRAPPED/JWE_RSA", client_config={"entity_auth_data_provider": provider})
        ctx = p.client_ctx
        # The client can sign under the stale key pair ID with its real private key.
        rsa_factory = ctx.entity_auth_factories["RSA"]
        store = rsa_factory.store  # type: ignore[attr-defined]
        store.add("rsaclientkey-old", private_key=store.get_private_key("rsaclientkey1"))
        response = await p.client.request(b"hello")
        assert response.payload == b"echo hello (rsaclient1/-)"
        assert ResponseCode.ENTITYDATA_REAUTH in asked
        failed = p.seen[0]
        assert failed.request is None  # the server could not authenticate it
        error = error_of(failed, p.client_ctx)
        assert error is not None and error.error is MslError.RSA_PUBLICKEY_NOT_FOUND
        assert error.error_code is ResponseCode.ENTITYDATA_REAUTH
        resent = p.seen[1]
        assert resent.request is not None and resent.handshake
        assert resent.request.entity_auth_data == good
        assert resent.request.message_id == error.message_id + 1

    run(go())


def test_entitydata_reauth_from_application_rejection() -> None:
    async def go() -> None:
        asked: list[ResponseCode | None] = []
        rejected: list[int] = []

        async def handler(request: Request) -> Reply:
            if not rejected:
                rejected.append(request.header.message_id)
                assert request.header.master_token is None
                raise RequestRejected(entity=True, request=request)
            return Reply(b"welcome back")

        def provider(code: ResponseCode | None) -> PskEntityAuthData:
            asked.append(code)
            return PskEntityAuthData("client1")

        # Hold no session: every request of the first call goes with entity auth data.
        p = make_pair(
            "PSK", "SYMMETRIC_WRAPPED", handler=handler, client_config={"entity_auth_data_provider": provider}
        )
        response = await p.client.request(b"let me in")
        assert response.payload == b"welcome back"
        assert ResponseCode.ENTITYDATA_REAUTH in asked
        failed, resent = p.seen
        error = _check_resend(p, failed, resent, ResponseCode.ENTITYDATA_REAUTH)
        assert error.error is MslError.ENTITY_REJECTED_BY_APP
        assert resent.request is not None and resent.request.master_token is None
        assert len(p.handled) == 2 and p.handled[1].payload == b"let me in"

    run(go())


def test_user_reauth_after_user_revocation() -> None:
    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED")
        options = MessageOptions(user_id="alice", user_auth=EmailPasswordAuthData(*USER1))
        await p.client.request(b"a", options)
        old_uit = p.store.get_user_id_token("alice")
        mt = p.store.get_master_token()
        assert old_uit is not None and mt is not None
        await p.factory.revoke_user_id_token(old_uit.serial_number)
        response = await p.client.request(b"b", options)
        assert response.payload == b"echo b (client1/user1@foo.com)"
        failed, resent = p.seen[-2], p.seen[-1]
        error = _check_resend(p, failed, resent, ResponseCode.USER_REAUTH)
        assert error.error is MslError.USERIDTOKEN_REVOKED
        assert resent.request is not None and resent.request.master_token == mt
        assert resent.request.data.user_id_token is None and resent.request.data.user_auth_data is not None
        new_uit = p.store.get_user_id_token("alice")
        assert new_uit is not None and new_uit.serial_number != old_uit.serial_number

    run(go())


def test_user_reauth_after_revoke_user_gives_up_without_credentials() -> None:
    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED")
        creds = EmailPasswordAuthData(*USER1)
        await p.client.request(b"a", MessageOptions(user_id="alice", user_auth=creds))
        assert p.store.get_user_id_token("alice") is not None
        await p.factory.revoke_user("user1@foo.com")
        # Without credentials the client cannot re-authenticate the user.
        with pytest.raises(MslErrorResponse) as info:
            await p.client.request(b"b", MessageOptions(user_id="alice"))
        assert info.value.response_code is ResponseCode.USER_REAUTH
        assert info.value.error is MslError.USERIDTOKEN_REVOKED
        assert p.store.get_user_id_token("alice") is None
        # With credentials it recovers: user auth data instead of the revoked token.
        response = await p.client.request(b"c", MessageOptions(user_id="alice", user_auth=creds))
        assert response.payload == b"echo c (client1/user1@foo.com)"

    run(go())


def test_userdata_reauth_wrong_password_then_right_one() -> None:
    async def go() -> None:
        asked: list[ResponseCode | None] = []

        def provider(code: ResponseCode | None) -> UserAuthData:
            asked.append(code)
            if code is None:
                return EmailPasswordAuthData(USER2[0], "wrong")
            return EmailPasswordAuthData(*USER2)

        p = make_pair("PSK", "SYMMETRIC_WRAPPED")
        response = await p.client.request(b"hi", MessageOptions(user_id="bob", user_auth=provider))
        assert response.payload == b"echo hi (client1/user2@foo.com)"
        assert asked == [None, ResponseCode.USERDATA_REAUTH]
        failed, resent = p.seen
        error = _check_resend(p, failed, resent, ResponseCode.USERDATA_REAUTH)
        assert error.error is MslError.EMAILPASSWORD_INCORRECT
        uit = p.store.get_user_id_token("bob")
        assert uit is not None and response.user_id_token == uit

    run(go())


def test_userdata_reauth_provider_gives_up() -> None:
    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED")

        def provider(code: ResponseCode | None) -> UserAuthData | None:
            return EmailPasswordAuthData(USER2[0], "wrong") if code is None else None

        with pytest.raises(MslErrorResponse) as info:
            await p.client.request(b"hi", MessageOptions(user_id="bob", user_auth=provider))
        assert info.value.response_code is ResponseCode.USERDATA_REAUTH
        assert p.transport.connections == 1

    run(go())


def test_keyx_required_when_response_must_be_encrypted() -> None:
    """RSA client, data not required encrypted: while another request holds the renewal
    lock it sends without key request data; the server requires an encrypted response."""

    async def go() -> None:
        p = make_pair("RSA", "ASYMMETRIC_WRAPPED/JWK_RSA")
        options = MessageOptions(encrypted=False)
        first, second = await asyncio.gather(p.client.request(b"one", options), p.client.request(b"two", options))
        assert first.payload == b"echo one (rsaclient1/-)"
        assert second.payload == b"echo two (rsaclient1/-)"
        assert second.messages == 4
        by_id = {s.request.message_id: s for s in p.seen if s.request is not None}
        failed = next(s for s in p.seen if s.request is not None and not s.request.data.renewable)
        error = error_of(failed, p.client_ctx)
        assert error is not None and error.error_code is ResponseCode.KEYX_REQUIRED
        assert error.error is MslError.RESPONSE_REQUIRES_ENCRYPTION
        resent = by_id[error.message_id + 1]
        assert resent.request is not None and resent.request.data.renewable
        assert resent.request.master_token is None and resent.request.data.key_request_data
        # The application ran for the rejected request too (the response check follows it).
        assert sorted(h.payload for h in p.handled) == [b"one", b"two", b"two"]

    run(go())


def test_replayed_non_replayable_message_is_resent_with_a_fresh_id() -> None:
    class ReplayingStore(InMemoryStore):
        replay_next = False
        last = 0

        def get_non_replayable_id(self, master_token: MasterToken) -> int:
            if self.replay_next:
                self.replay_next = False
                return self.last
            self.last = super().get_non_replayable_id(master_token)
            return self.last

    async def go() -> None:
        store = ReplayingStore()
        clock = FixedClock(T0)
        p = make_pair("PSK", "SYMMETRIC_WRAPPED", clock=clock, client_ctx=client_context("PSK", clock, store=store))
        options = MessageOptions(non_replayable=True)
        await p.client.request(b"pay 1", options)
        first = p.seen[-1].request
        assert first is not None and first.data.non_replayable_id == 1
        store.replay_next = True
        response = await p.client.request(b"pay 2", options)
        assert response.payload == b"echo pay 2 (client1/-)"
        failed, resent = p.seen[-2], p.seen[-1]
        error = _check_resend(p, failed, resent, ResponseCode.REPLAYED)
        assert error.error is MslError.MESSAGE_REPLAYED
        assert failed.request is not None and failed.request.data.non_replayable_id == 1
        assert resent.request is not None and resent.request.data.non_replayable_id == 2
        assert [h.payload for h in p.handled] == [b"pay 1", b"pay 2"]

    run(go())


class ErrorOnce:
    """A server front that answers the first request with a crafted error header."""

    def __init__(self, p: Pair, code: ResponseCode, *, internal_code: int | None = None) -> None:
        self.p = p
        self.code = code
        self.internal_code = internal_code
        self.sent: list[ErrorHeader] = []
        self.inner = p.recorder

    async def __call__(self, channel: Channel) -> None:
        if self.sent:
            await self.inner(channel)
            return
        data = b""
        while chunk := await channel.read():
            data += chunk
        reader = MessageReader(self.p.recorder.peek_ctx)
        reader.feed(data)
        assert reader.header is not None
        self.request = reader.header
        ctx = self.p.server_ctx
        ead = ctx.get_entity_auth_data()
        assert ead is not None
        error = ErrorHeader.create(
            ctx,
            ead,
            reader.header.message_id + 1,
            self.code,
            internal_code=self.internal_code,
            error_message="crafted",
            user_message="please sign in again",
        )
        self.sent.append(error)
        await channel.write(error.encode())
        await channel.finish()


def test_ssotoken_rejected_resends_with_new_user_auth_data() -> None:
    async def go() -> None:
        asked: list[ResponseCode | None] = []

        def provider(code: ResponseCode | None) -> UserAuthData:
            asked.append(code)
            return EmailPasswordAuthData(*USER1)

        p = make_pair("PSK", "SYMMETRIC_WRAPPED")
        options = MessageOptions(user_id="alice", user_auth=provider)
        await p.client.request(b"a", options)
        uit = p.store.get_user_id_token("alice")
        assert uit is not None
        front = ErrorOnce(p, ResponseCode.SSOTOKEN_REJECTED)
        p.client.transport = LoopbackTransport(front)
        response = await p.client.request(b"b", options)
        assert response.payload == b"echo b (client1/user1@foo.com)"
        assert asked == [None, ResponseCode.SSOTOKEN_REJECTED]
        assert front.request.data.user_id_token == uit
        (resent,) = p.seen[-1:]
        assert resent.request is not None
        assert resent.request.message_id == front.sent[0].message_id + 1
        # The resend carries the new user authentication data instead of the token.
        assert resent.request.data.user_auth_data is not None
        assert resent.request.data.user_id_token is None
        assert p.store.get_user_id_token("alice") is not None

    run(go())


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (MslError.INTERNAL_EXCEPTION, ResponseCode.TRANSIENT_FAILURE),
        (MslError.MSL_COMMS_FAILURE, ResponseCode.FAIL),
    ],
)
def test_fail_and_transient_failure_reach_the_application(error: MslError, code: ResponseCode) -> None:
    async def go() -> None:
        async def handler(request: Request) -> Reply:
            if request.payload == b"boom":
                raise MslException(error, "handler failed")
            return Reply(b"fine")

        def user_message(err: MslError, languages: object) -> str:
            return f"sorry ({err.name})"

        p = make_pair("PSK", "SYMMETRIC_WRAPPED", handler=handler, server_kwargs={"error_messages": user_message})
        await p.client.request(b"ok")
        before = p.transport.connections
        with pytest.raises(MslErrorResponse) as info:
            await p.client.request(b"boom")
        assert p.transport.connections == before + 1  # no automatic retry
        assert info.value.response_code is code
        assert info.value.error is error
        assert info.value.user_message == f"sorry ({error.name})"
        assert info.value.error_header.internal_code == error.internal_code
        # The session is intact.
        assert (await p.client.request(b"ok")).payload == b"fine"

    run(go())


@pytest.mark.parametrize("code", [ResponseCode.FAIL, ResponseCode.TRANSIENT_FAILURE])
def test_crafted_fail_codes_carry_user_message(code: ResponseCode) -> None:
    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED")
        front = ErrorOnce(p, code)
        p.client.transport = LoopbackTransport(front)
        with pytest.raises(MslErrorResponse) as info:
            await p.client.request(b"x")
        assert info.value.response_code is code
        assert info.value.user_message == "please sign in again"
        assert info.value.error_message == "crafted"
        assert info.value.message_id == front.sent[0].message_id

    run(go())

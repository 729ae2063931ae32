"""What the engine tells its observer, with a real client and server: one record per
server message with its kind, key exchange and error; client messages and recovery
steps; state calls; never a secret in any record."""

from __future__ import annotations

import logging

import pytest
from tests.engine.harness import USER1, make_pair, run

from missile.engine.options import MessageOptions
from missile.errors import MslError
from missile.observe import LogObserver, MessageObserved, Observer, RecoveryObserved, StateCallObserved
from missile.userauth.email_password import EmailPasswordAuthData


class Recorder(Observer):
    def __init__(self) -> None:
        self.messages: list[MessageObserved] = []
        self.recoveries: list[RecoveryObserved] = []
        self.state_calls: list[StateCallObserved] = []

    def message(self, event: MessageObserved) -> None:
        self.messages.append(event)

    def recovery(self, event: RecoveryObserved) -> None:
        self.recoveries.append(event)

    def state_call(self, event: StateCallObserved) -> None:
        self.state_calls.append(event)


def test_server_and_client_messages_key_exchange_then_application() -> None:
    server_seen, client_seen = Recorder(), Recorder()

    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED", server_kwargs={"observer": server_seen},
                      client_kwargs={"observer": client_seen})  # fmt: skip
        p.factory.observer = server_seen
        await p.client.request(b"first")
        await p.client.request(b"second", MessageOptions(non_replayable=True))

    run(go())
    first, second = server_seen.messages
    assert (first.role, first.kind, first.key_exchange) == ("server", "key_exchange", "SYMMETRIC_WRAPPED")
    assert first.identity == "client1" and first.bytes_in > 0 and first.bytes_out > 0 and first.duration > 0
    assert (second.kind, second.key_exchange, second.error) == ("application", None, None)
    kinds = [(m.role, m.kind) for m in client_seen.messages]
    assert kinds == [("client", "key_exchange"), ("client", "application")]
    assert client_seen.messages[0].bytes_in == first.bytes_out  # the same bytes, seen from both ends
    operations = {c.operation for c in server_seen.state_calls}
    assert {"check_master_token", "record_new_master_token"} <= operations
    assert all(c.ok and c.backend == "MemoryTokenState" for c in server_seen.state_calls)


def test_error_and_recovery_are_observed() -> None:
    server_seen, client_seen = Recorder(), Recorder()

    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED", server_kwargs={"observer": server_seen},
                      client_kwargs={"observer": client_seen})  # fmt: skip
        await p.client.request(b"a")
        old = p.store.get_master_token()
        assert old is not None
        await p.factory.revoke_master_token(old.serial_number)
        await p.client.request(b"b")

    run(go())
    errors = [m for m in server_seen.messages if m.kind == "error"]
    assert [(e.error, e.response_code) for e in errors] == [
        (MslError.MASTERTOKEN_IDENTITY_REVOKED.name, "ENTITY_REAUTH")
    ]
    (step,) = client_seen.recoveries
    assert step.response_code == "ENTITY_REAUTH" and step.action == "re-authenticate the entity"
    assert (step.message, step.budget) == (2, 12)  # the request and its error answer
    assert [m.kind for m in client_seen.messages][-2:] == ["error", "key_exchange"]


async def _logged_exchange(secrets: list[bytes]) -> None:
    """A key exchange with user authentication, every party logging; the session keys it
    made are added to ``secrets`` (whose second entry is the payload sent)."""
    p = make_pair("PSK", "SYMMETRIC_WRAPPED", server_kwargs={"observer": LogObserver()},
                  client_kwargs={"observer": LogObserver()})  # fmt: skip
    p.factory.observer = LogObserver()
    options = MessageOptions(user_id="alice", user_auth=EmailPasswordAuthData(*USER1))
    await p.client.request(secrets[1], options)
    keys = p.store.get_crypto_context(p.store.get_master_token())  # type: ignore[arg-type]
    assert keys is not None
    secrets.extend(bytes(v) for v in vars(keys).values() if isinstance(v, bytes | bytearray) and len(v) >= 16)


def test_log_records_carry_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    secrets = [USER1[1].encode(), b"hello secret payload"]

    with caplog.at_level(logging.DEBUG, logger="missile"):
        run(_logged_exchange(secrets))
    server_records = [r for r in caplog.records if r.name == "missile.server"]
    assert any(getattr(r, "msl", {}).get("user") == "user1@foo.com" for r in server_records)
    for record in caplog.records:
        text = (record.getMessage() + repr(getattr(record, "msl", ""))).encode()
        for secret in secrets:
            assert secret not in text and secret.hex().encode() not in text


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_lines_of_the_direct_path_carry_no_secret(missile_logger: logging.Logger, fmt: str) -> None:
    """As missile serve logs (missile's own handler and formatters only): message
    records take the direct path (no LogRecord, formatted late), and no line written
    carries a secret."""
    import io
    from unittest import mock

    from missile.cli.observing import log_config
    from missile.observe import JsonFormatter, logs
    from missile.observe.handlers import BufferedStreamHandler, TextFormatter

    secrets = [USER1[1].encode(), b"hello secret payload"]
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, interval=3600)
    text = log_config("debug", "text", False)["formatters"]["missile"]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(text["format"], text["datefmt"]))
    missile_logger.handlers[:] = [handler]
    general: list[str] = []
    real = logs._handle

    def counted(logger: logging.Logger, *args: object) -> None:
        general.append(logger.name)
        real(logger, *args)  # type: ignore[arg-type]

    try:
        with mock.patch.object(logs, "_handle", counted):
            run(_logged_exchange(secrets))
        handler.flush()
    finally:
        handler.close()
    written = stream.getvalue()
    assert not general  # every record of the observer took the direct path
    assert "server message" in written and "user1@foo.com" in written and "client message" in written
    assert "check_master_token" in written or "record_new_master_token" in written  # state calls (DEBUG)
    data = written.encode()
    for secret in secrets:
        assert secret not in data and secret.hex().encode() not in data

"""Reading a message the way the engine does: the sans-IO reader, then the issuer's checks.

The reader never asks the token state anything; after it returns a header, the engine
awaits :func:`missile.engine.issuer.check_request` (revocation, expiry and renewability,
user ID tokens, replay). Tests that mirror the reference's MessageInputStream tests,
where both happened in one step, use these helpers to run the two steps from plain
(synchronous) test functions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from missile.context import MslContext
from missile.engine.issuer import check_request
from missile.errors import MslError, MslException
from missile.messages import Event, HeaderReceived
from missile.messages.header import MessageHeader

__all__ = ["check", "check_events", "check_fails", "run"]

_T = TypeVar("_T")


def run(call: Coroutine[Any, Any, _T]) -> _T:
    """Await ``call`` on a fresh event loop (for a coroutine such as ``revoke_user``)."""
    return asyncio.run(call)


def check(ctx: MslContext, header: MessageHeader) -> None:
    """The engine's issuer checks on a header the reader returned."""
    run(check_request(ctx, header))


def check_events(ctx: MslContext, events: Sequence[Event]) -> MessageHeader:
    """The issuer checks on the header the reader's ``events`` start with; returns it."""
    assert events, "the reader returned no event"
    first = events[0]
    assert isinstance(first, HeaderReceived), first
    check(ctx, first.header)
    return first.header


def check_fails(ctx: MslContext, events: Sequence[Event], error: MslError) -> MslException:
    """The reader accepted the header (``events``) and the issuer's checks refuse it
    with ``error``; returns the exception."""
    with pytest.raises(MslException) as info:
        check_events(ctx, events)
    assert info.value.error is error, info.value
    return info.value

"""The observer interface and its events (see :mod:`missile.observe`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

__all__ = [
    "KINDS",
    "MessageObserved",
    "Observer",
    "Observers",
    "RecoveryObserved",
    "StateCallObserved",
]

#: What a message was, from the protocol's point of view.
KINDS = ("handshake", "key_exchange", "renewal", "application", "error")


@dataclass(frozen=True, slots=True)
class MessageObserved:
    """One message handled: a server's request and answer, or one message a client sent
    and the answer it got."""

    role: str
    """``"server"``, ``"client"`` or ``"peer"``."""
    kind: str
    """One of :data:`KINDS`: ``error`` when an error message was sent or received."""
    identity: str | None = None
    """The remote entity's identity (server) or our own (client), when known."""
    user: str | None = None
    """The authenticated user, when there is one."""
    message_id: int | None = None
    """The request's message ID."""
    path: str | None = None
    """The request path, over HTTP."""
    key_exchange: str | None = None
    """The key exchange scheme, when keys were exchanged."""
    error: str | None = None
    """The MslError name, when an error message was sent or received."""
    response_code: str | None = None
    """The error message's response code name (e.g. ``ENTITY_REAUTH``)."""
    bytes_in: int = 0
    """Message bytes received."""
    bytes_out: int = 0
    """Message bytes sent."""
    duration: float = 0.0
    """Seconds from the first byte read (server) or the request's start (client)."""


@dataclass(frozen=True, slots=True)
class RecoveryObserved:
    """A client's automatic recovery from an error message (control.md §10)."""

    error: str
    """The MslError name that came back."""
    response_code: str
    """Its response code name."""
    action: str
    """What the client does next, in words (e.g. "re-authenticate the entity")."""
    message: int
    """How many messages the request has used so far."""
    budget: int
    """How many it may use in all."""


@dataclass(frozen=True, slots=True)
class StateCallObserved:
    """One call to the issuer's token state."""

    backend: str
    """The state's class name (``SqliteTokenState``...)."""
    operation: str
    """The call (``check_master_token``, ``record_issued``...)."""
    seconds: float
    """How long it took (until the bound, when it timed out)."""
    ok: bool
    """False when it failed or timed out."""


class Observer:
    """The hooks the engine calls. Every hook does nothing here; override what you need.

    Hooks run on the event loop, inline: keep them quick and never raise (an exception
    from a hook is logged and dropped by the engine, never turned into a protocol error).
    """

    def message(self, event: MessageObserved) -> None:
        """A message was handled."""

    def recovery(self, event: RecoveryObserved) -> None:
        """A client recovers from an error message."""

    def state_call(self, event: StateCallObserved) -> None:
        """The token state answered (or did not, in time)."""

    def span(self, name: str, attributes: Mapping[str, str | int]) -> AbstractContextManager[None]:
        """A tracing scope around a client request, one message of its exchange, or a
        message a server handles; ``attributes`` are known when it starts."""
        return contextlib.nullcontext()

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Add the current trace context to outgoing transport headers."""

    def extract(self, headers: Mapping[str, str]) -> AbstractContextManager[None]:
        """A scope in which the trace context of incoming transport headers is current."""
        return contextlib.nullcontext()


class Observers(Observer):
    """Several observers as one, called in order."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = tuple(observers)

    def message(self, event: MessageObserved) -> None:
        for observer in self.observers:
            observer.message(event)

    def recovery(self, event: RecoveryObserved) -> None:
        for observer in self.observers:
            observer.recovery(event)

    def state_call(self, event: StateCallObserved) -> None:
        for observer in self.observers:
            observer.state_call(event)

    @contextlib.contextmanager
    def span(self, name: str, attributes: Mapping[str, str | int]) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for observer in self.observers:
                stack.enter_context(observer.span(name, attributes))
            yield

    def inject(self, headers: MutableMapping[str, str]) -> None:
        for observer in self.observers:
            observer.inject(headers)

    @contextlib.contextmanager
    def extract(self, headers: Mapping[str, str]) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for observer in self.observers:
                stack.enter_context(observer.extract(headers))
            yield

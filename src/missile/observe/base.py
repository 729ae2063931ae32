"""The observer interface and its events (see :mod:`missile.observe`)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = [
    "CURRENT",
    "KINDS",
    "MessageObserved",
    "Observer",
    "Observers",
    "RecoveryObserved",
    "StateCallObserved",
    "trace_headers",
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

    An observer that opens spans or carries trace context (:meth:`span`,
    :meth:`inject`, :meth:`extract`) sets :attr:`traces`, so that :class:`Observers`
    enters the scopes of those observers only.

    Hooks run on the event loop, inline: keep them quick and never raise (an exception
    from a hook is logged and dropped by the engine, never turned into a protocol error).
    """

    traces: bool = False
    """True for an observer whose :meth:`span`, :meth:`inject` or :meth:`extract` do something."""

    def observes(self, role: str) -> bool:
        """Whether :meth:`message` would do anything with a message of ``role`` (client,
        server, peer) handled now. When it would not and :attr:`traces` is False, the
        engine builds no event, counts no bytes and opens no scope for the message, so
        observing costs nothing when nothing is observed. True here; an observer that
        drops some messages (a log below INFO) says so, and a subclass that overrides
        :meth:`message` answers for it too."""
        return True

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
        self._tracers = tuple(o for o in self.observers if o.traces)
        self.traces = bool(self._tracers)

    def observes(self, role: str) -> bool:
        return any(observer.observes(role) for observer in self.observers)

    def message(self, event: MessageObserved) -> None:
        for observer in self.observers:
            observer.message(event)

    def recovery(self, event: RecoveryObserved) -> None:
        for observer in self.observers:
            observer.recovery(event)

    def state_call(self, event: StateCallObserved) -> None:
        for observer in self.observers:
            observer.state_call(event)

    def span(self, name: str, attributes: Mapping[str, str | int]) -> AbstractContextManager[None]:
        if not self._tracers:
            return contextlib.nullcontext()
        if len(self._tracers) == 1:
            return self._tracers[0].span(name, attributes)
        return self._nested(lambda o: o.span(name, attributes))

    def inject(self, headers: MutableMapping[str, str]) -> None:
        for observer in self._tracers:
            observer.inject(headers)

    def extract(self, headers: Mapping[str, str]) -> AbstractContextManager[None]:
        if not self._tracers:
            return contextlib.nullcontext()
        if len(self._tracers) == 1:
            return self._tracers[0].extract(headers)
        return self._nested(lambda o: o.extract(headers))

    @contextlib.contextmanager
    def _nested(self, scope: Callable[[Observer], AbstractContextManager[None]]) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for observer in self._tracers:
                stack.enter_context(scope(observer))
            yield


#: The observer of the client exchange running in this task: transports add its trace
#: context to the requests they send (:func:`trace_headers`) without being told of it.
CURRENT: ContextVar[Observer | None] = ContextVar("missile_observer", default=None)


def trace_headers() -> dict[str, str]:
    """Transport headers carrying the current exchange's trace context (often none)."""
    observer = CURRENT.get()
    if observer is None:
        return {}
    headers: dict[str, str] = {}
    observer.inject(headers)
    # Only what fits in an HTTP/1.1 field: a propagator never needs more.
    return {k: v for k, v in headers.items() if _FIELD.fullmatch(k) and _VALUE.fullmatch(v)}


_FIELD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_VALUE = re.compile(r"[\x20-\x7e]{0,512}")

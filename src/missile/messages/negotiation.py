"""Encoder format negotiation (docs/binary-format.md §8).

The rules keep every JSON-only peer (the Java and JavaScript references) working
unchanged, because binary data goes only to a peer that said it reads it:

* A client that has not heard from its server writes JSON and advertises every format
  it reads (its capabilities).
* A server answers in the first format of its own capabilities that the request also
  advertises; without capabilities, JSON.
* The client remembers the formats of the server's last response in its store (across
  restarts, for a persistent store) and writes its requests in the first format of its
  own capabilities that the server advertised, from then on.

Each side's preference is the order of its own capabilities. missile's default
(:data:`~missile.messages.capabilities.DEFAULT_CAPABILITIES`) advertises both formats
and prefers JSON: measured today, missile's JSON codec (C) costs less CPU per small
message than its binary one (pure Python), while binary is 2.4 times smaller and much
faster to receive in bulk. Deployments that want binary list it first
(:data:`~missile.messages.capabilities.BINARY_PREFERRED`) on both sides.

A response without the binary format, or an error response saying that a binary request
could not be parsed, puts a client back to JSON.

Tokens follow the response: a binary response issues binary tokens (the builder passes
:func:`response_format` to the token factory), so binary tokens, like binary messages,
reach only a party that advertised the format (docs/binary-format.md §7).

Stores opt in by offering ``get_peer_encoder_formats``/``set_peer_encoder_formats``
(the in-memory and SQLite stores do); with any other store a client keeps to JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from missile.encoding import EncoderFormat
from missile.errors import MslError
from missile.messages.capabilities import MessageCapabilities
from missile.messages.error_header import ErrorHeader
from missile.messages.header import MessageHeader

__all__ = ["best_format", "remember_peer_formats", "request_format", "response_format"]

#: Error responses that mean "could not read your message": after a binary request, the
#: server may have lost the binary format (a downgrade, another server behind the name).
_UNREADABLE = frozenset({MslError.MSL_PARSE_ERROR, MslError.MESSAGE_FORMAT_ERROR})


def best_format(formats: Iterable[EncoderFormat], preference: Sequence[EncoderFormat]) -> EncoderFormat:
    """The first format of ``preference`` among ``formats``; JSON when there is none."""
    offered = set(formats)
    return next((f for f in preference if f in offered), EncoderFormat.JSON)


def response_format(request: MessageCapabilities | None, own: MessageCapabilities | None) -> EncoderFormat:
    """The format of a response: the first of this side's formats the request advertises."""
    if request is None or own is None:
        return EncoderFormat.JSON
    return best_format(request.encoder_formats, own.encoder_formats)


def request_format(store: object, own: MessageCapabilities | None) -> EncoderFormat:
    """The format of a client request: the best format the server last advertised that
    this side also reads, JSON when the server was never heard from."""
    getter = getattr(store, "get_peer_encoder_formats", None)
    names = getter() if getter is not None else None
    if not names or own is None:
        return EncoderFormat.JSON
    known = {f.value: f for f in own.encoder_formats}
    return best_format((known[name] for name in names if name in known), own.encoder_formats)


def remember_peer_formats(
    store: object, request: MessageHeader, response: MessageHeader | None, error: ErrorHeader | None
) -> None:
    """Update the server's formats in ``store`` from its answer to ``request``."""
    setter = getattr(store, "set_peer_encoder_formats", None)
    if setter is None:
        return
    if response is not None:
        caps = response.data.capabilities
        setter(tuple(f.value for f in caps.encoder_formats) if caps is not None else ())
    elif error is not None and request.encoder_format is not EncoderFormat.JSON and error.error in _UNREADABLE:
        setter((EncoderFormat.JSON.value,))

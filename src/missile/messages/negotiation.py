"""Encoder format negotiation (docs/binary-format.md §8).

The rules keep every JSON-only peer (the Java and JavaScript references) working
unchanged, because binary data goes only to a peer that said it reads it:

* A client that has not heard from its server writes JSON and advertises every format
  it reads (its capabilities).
* A server answers in the best format both sides advertise (the request's capabilities
  intersected with its own); without capabilities, JSON.
* The client remembers the formats of the server's last response in its store (across
  restarts, for a persistent store) and writes its requests in the best of them from
  then on. A response without the binary format, or an error response saying that a
  binary request could not be parsed, puts it back to JSON.

Stores opt in by offering ``get_peer_encoder_formats``/``set_peer_encoder_formats``
(the in-memory and SQLite stores do); with any other store a client keeps to JSON.
"""

from __future__ import annotations

from collections.abc import Iterable

from missile.encoding import EncoderFormat
from missile.errors import MslError
from missile.messages.capabilities import MessageCapabilities
from missile.messages.error_header import ErrorHeader
from missile.messages.header import MessageHeader

__all__ = ["best_format", "remember_peer_formats", "request_format", "response_format"]

#: Error responses that mean "could not read your message": after a binary request, the
#: server may have lost the binary format (a downgrade, another server behind the name).
_UNREADABLE = frozenset({MslError.MSL_PARSE_ERROR, MslError.MESSAGE_FORMAT_ERROR})


def best_format(formats: Iterable[EncoderFormat]) -> EncoderFormat:
    """The most preferred of ``formats``, JSON when there is none."""
    return max(formats, key=lambda f: f.preference, default=EncoderFormat.JSON)


def response_format(request: MessageCapabilities | None, own: MessageCapabilities | None) -> EncoderFormat:
    """The format of a response: the best one both sides advertise."""
    if request is None or own is None:
        return EncoderFormat.JSON
    return best_format(f for f in request.encoder_formats if f in own.encoder_formats)


def request_format(store: object, own: MessageCapabilities | None) -> EncoderFormat:
    """The format of a client request: the best format the server last advertised that
    this side also reads, JSON when the server was never heard from."""
    getter = getattr(store, "get_peer_encoder_formats", None)
    names = getter() if getter is not None else None
    if not names or own is None:
        return EncoderFormat.JSON
    known = {f.value: f for f in own.encoder_formats}
    return best_format(known[name] for name in names if name in known)


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

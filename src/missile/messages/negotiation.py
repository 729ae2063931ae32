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
and prefers binary, so two missile parties write binary from their second exchange on:
it is 2.4 times smaller, costs less CPU per small message and is much faster in bulk.
A party whose messages should stay JSON where possible lists JSON first
(:data:`~missile.messages.capabilities.JSON_PREFERRED`); one that must never receive
binary lists only JSON.

A response without the binary format, or an error response saying that a binary request
could not be parsed, puts a client back to JSON.

Tokens follow the response: a binary response issues binary tokens (the builder passes
:func:`response_format` to the token factory), so binary tokens, like binary messages,
reach only a party that advertised the format (docs/binary-format.md §7).

Stores opt in by offering ``get_peer_encoder_formats``/``set_peer_encoder_formats``
(the in-memory and SQLite stores do); with any other store a client keeps to JSON.

Both sides answer these questions for every message, nearly always with the same few
inputs (a peer sends the same capabilities each time, and parsed capabilities are
shared). So the answers for tuples, which cannot change, are kept in small bounded
tables keyed by the tuples themselves; a table keeps the *position* of the answer in the
caller's own preference, so the object returned is always the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from missile.encoding import EncoderFormat
from missile.errors import MslError
from missile.messages.capabilities import MessageCapabilities
from missile.messages.error_header import ErrorHeader
from missile.messages.header import MessageHeader

__all__ = ["best_format", "remember_peer_formats", "request_format", "response_format"]

#: Error responses that mean "could not read your message": after a binary request, the
#: server may have lost the binary format (a downgrade, another server behind the name).
_UNREADABLE = frozenset({MslError.MSL_PARSE_ERROR, MslError.MESSAGE_FORMAT_ERROR})

#: Entries per table: far more than the format combinations a deployment sees (a few),
#: few enough to stay small when a peer varies its capabilities on purpose.
_TABLE_MAX = 256

# (offered, preference) -> position in preference of the best format, -1 for none.
_BEST: dict[tuple[tuple[Any, ...], tuple[Any, ...]], int] = {}
# (names the server advertised, own formats) -> position in own formats, -1 for none.
_REQUEST: dict[tuple[tuple[Any, ...], tuple[Any, ...]], int] = {}
# formats a response advertised -> their names, as stored.
_NAMES: dict[tuple[Any, ...], tuple[str, ...]] = {}


def _remember(table: dict[Any, Any], key: object, value: object) -> None:
    if len(table) < _TABLE_MAX:
        table[key] = value


def _tabled(
    table: dict[tuple[tuple[Any, ...], tuple[Any, ...]], int],
    offered: Iterable[Any],
    preference: Sequence[EncoderFormat],
    position: Callable[[Any, Sequence[EncoderFormat]], int],
) -> int:
    """``position(offered, preference)``, from ``table`` when both are tuples (exact keys)."""
    if type(offered) is not tuple or type(preference) is not tuple:
        return position(offered, preference)
    key = (offered, preference)
    found = table.get(key)
    if found is None:
        found = position(offered, preference)
        _remember(table, key, found)
    return found


def _best_position(formats: Iterable[EncoderFormat], preference: Sequence[EncoderFormat]) -> int:
    offered = set(formats)
    return next((i for i, f in enumerate(preference) if f in offered), -1)


def best_format(formats: Iterable[EncoderFormat], preference: Sequence[EncoderFormat]) -> EncoderFormat:
    """The first format of ``preference`` among ``formats``; JSON when there is none."""
    position = _tabled(_BEST, formats, preference, _best_position)
    return preference[position] if position >= 0 else EncoderFormat.JSON


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
    preference = own.encoder_formats
    position = _tabled(_REQUEST, names, preference, _request_position)
    return preference[position] if position >= 0 else EncoderFormat.JSON


def _request_position(names: Iterable[str], preference: Sequence[EncoderFormat]) -> int:
    known = {f.value: f for f in preference}
    return _best_position((known[name] for name in names if name in known), preference)


def _names(formats: Sequence[EncoderFormat]) -> tuple[str, ...]:
    """The names of ``formats``, as a store keeps them."""
    if type(formats) is not tuple:
        return tuple(f.value for f in formats)
    names = _NAMES.get(formats)
    if names is None:
        names = tuple(f.value for f in formats)
        _remember(_NAMES, formats, names)
    return names


def remember_peer_formats(
    store: object, request: MessageHeader, response: MessageHeader | None, error: ErrorHeader | None
) -> None:
    """Update the server's formats in ``store`` from its answer to ``request``."""
    setter = getattr(store, "set_peer_encoder_formats", None)
    if setter is None:
        return
    if response is not None:
        caps = response.data.capabilities
        setter(_names(caps.encoder_formats) if caps is not None else ())
    elif error is not None and request.encoder_format is not EncoderFormat.JSON and error.error in _UNREADABLE:
        setter((EncoderFormat.JSON.value,))

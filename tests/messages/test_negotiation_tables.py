"""The answers negotiation.py keeps in tables agree with the rules worked out afresh.

``best_format``, ``request_format`` and the names ``remember_peer_formats`` stores are
kept per input tuple; here every small combination of formats (with plain strings,
repeats and unknown names mixed in) is asked twice, as tuples (kept) and as lists (never
kept), and compared with the rules written out plainly. The tables stay bounded.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from missile.encoding import EncoderFormat
from missile.messages import negotiation
from missile.messages.capabilities import MessageCapabilities
from missile.messages.negotiation import best_format, request_format

BIN = EncoderFormat.MISSILE_CBOR
JSON = EncoderFormat.JSON
PIECES: list[Any] = [JSON, BIN, "JSON", "other"]
COMBINATIONS = [combo for n in range(4) for combo in itertools.product(PIECES, repeat=n)]
OWN = [combo for combo in COMBINATIONS if all(isinstance(f, EncoderFormat) for f in combo)]


def _plain_best(formats: Iterable[Any], preference: Sequence[Any]) -> Any:
    offered = set(formats)
    return next((f for f in preference if f in offered), JSON)


def _plain_request(names: Sequence[str] | None, own: MessageCapabilities | None) -> Any:
    if not names or own is None:
        return JSON
    known = {f.value: f for f in own.encoder_formats}
    return _plain_best((known[name] for name in names if name in known), own.encoder_formats)


class _Store:
    def __init__(self, names: Any) -> None:
        self.names = names
        self.stored: list[Any] = []

    def get_peer_encoder_formats(self) -> Any:
        return self.names

    def set_peer_encoder_formats(self, formats: Any) -> None:
        self.stored.append(formats)


def test_best_format_agrees_with_the_rule_and_returns_the_callers_object() -> None:
    for formats in COMBINATIONS:
        for preference in COMBINATIONS:
            expected = _plain_best(formats, preference)
            for _ in range(2):
                for f, p in ((formats, preference), (list(formats), list(preference))):
                    got = best_format(f, p)
                    assert got == expected and type(got) is type(expected)
                    assert got is JSON or any(got is item for item in p)


def test_request_format_agrees_with_the_rule() -> None:
    names_choices: list[Any] = [
        None,
        (),
        [],
        *[tuple(str(f) if not isinstance(f, EncoderFormat) else f.value for f in combo) for combo in COMBINATIONS],
    ]
    for own_formats in OWN:
        own = MessageCapabilities(encoder_formats=own_formats)
        for names in names_choices:
            for store_names in (names, list(names) if names is not None else None):
                expected = _plain_request(store_names, own)
                for _ in range(2):
                    got = request_format(_Store(store_names), own)
                    assert got == expected and (got is JSON or any(got is f for f in own_formats))
        assert request_format(_Store(("JSON",)), None) is JSON
        assert request_format(object(), own) is JSON


def test_remembered_names_are_the_formats_values() -> None:
    for formats in OWN:
        for given in (formats, list(formats)):
            for _ in range(2):
                assert negotiation._names(given) == tuple(f.value for f in formats)


def test_tables_stay_bounded() -> None:
    for i in range(negotiation._TABLE_MAX + 50):
        names: Any = tuple(f"name-{i}-{j}" for j in range(2))
        assert best_format(names, (JSON, BIN)) is JSON
        assert request_format(_Store(names), MessageCapabilities(encoder_formats=(JSON, BIN))) is JSON
    for table in (negotiation._BEST, negotiation._REQUEST, negotiation._NAMES):
        assert len(table) <= negotiation._TABLE_MAX

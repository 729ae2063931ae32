"""The quick read of header data (messages/header.py) agrees with the general path.

Header data of the usual shape (message ID, timestamp, true flags, capabilities seen
before) is read by one match; everything else goes the general way. Whatever the
plaintext, parsing a header with the quick read must give the same header, or the same
error, as parsing it without: checked on generated header data, on mutated bytes, and
on the near misses written out below. Both paths run on correctly signed headers, so
the plaintext reaches the header data reader.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from missile.crypto.envelopes import envelope_in_format
from missile.encoding import EncoderFormat, cbor, decode, encode
from missile.encoding.codec import encode_json
from missile.errors import MslError, MslException
from missile.messages import header as header_module
from missile.messages.builder import build_request
from missile.messages.capabilities import DEFAULT_CAPABILITIES, JSON_PREFERRED, MessageCapabilities
from missile.messages.header import HeaderData, MessageHeader

from .conftest import Session

BIN = EncoderFormat.MISSILE_CBOR
JSON = EncoderFormat.JSON
FORMATS = [BIN, JSON]

_CAPABILITIES: list[Any] = [
    decode(b"\x1c" + DEFAULT_CAPABILITIES.cbor_encoded).to_dict(),
    decode(b"\x1c" + JSON_PREFERRED.cbor_encoded).to_dict(),
    {},
    {"languages": ["en-US"]},
    {"compressionalgos": ["LZW", "NOPE"], "languages": []},
    {"encoderformats": ["JSON", "missile.cbor.v1"]},  # the implied list written out: refused in binary
    {"languages": ["en", "en"], "encoderformats": ["JSON"]},
    {"languages": ['a"b', "\u00e9", "\\"]},
    {"compressionalgos": "GZIP"},
    {"languages": [1]},
    {"other": [[["deep"]]]},
    "not a map",
    [],
]
_KEYS = [
    "messageid",
    "timestamp",
    "renewable",
    "handshake",
    "capabilities",
    "sender",
    "nonreplayable",
    "nonreplayableid",
    "zzz",
    "a",
]
_INTS = st.one_of(
    st.sampled_from([0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1, 2**53, 2**64 - 1, -1]),
    st.integers(-(2**64), 2**64 - 1),
)
_VALUES = st.one_of(_INTS, st.booleans(), st.text(max_size=4), st.binary(max_size=4), st.sampled_from(_CAPABILITIES))


def _outcome(ctx: Any, wire: bytes) -> tuple[str, Any]:
    """What parsing ``wire`` gives: the header's meaning, or the error and the message
    ID it names."""
    try:
        header = MessageHeader.parse(ctx, decode(wire))
    except MslException as exc:
        return "error", (exc.error, exc.message_id, exc.master_token is not None)
    return "header", (
        header.data,
        header.master_token,
        header.entity_auth_data,
        header.crypto_context,
        header.headerdata,
        header.signature,
        header.encrypting,
        header.user,
        header.encoder_format,
    )


def _wire(header: MessageHeader, plaintext: bytes) -> bytes:
    crypto = header.crypto_context
    headerdata = envelope_in_format(crypto.encrypt(plaintext), header.encoder_format)
    return replace(header, headerdata=headerdata, signature=crypto.sign(headerdata)).encode()


def _check_agreement(session: Session, plaintext: bytes, fmt: EncoderFormat = BIN) -> None:
    header = build_request(session.client, encoder_format=fmt).header
    wire = _wire(header, plaintext)
    with mock.patch.object(header_module, "_quick_header_data", lambda _: None):
        general = _outcome(session.server, wire)
    # Twice: a first parse may only teach the quick read new capabilities.
    assert _outcome(session.server, wire) == general
    assert _outcome(session.server, wire) == general


@pytest.fixture(autouse=True)
def _fresh_capabilities() -> Any:
    with mock.patch.dict(header_module._QUICK_CAPABILITIES, clear=True):
        yield


_FLAGS = st.sampled_from([True, False])
#: The order in which the writer inserts header data members (messages/header.py).
_WRITER_ORDER = ["sender", "timestamp", "messageid", "nonreplayable", "renewable", "handshake", "capabilities"]


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    base=st.fixed_dictionaries(
        {"messageid": _INTS, "timestamp": _INTS, "capabilities": st.sampled_from(_CAPABILITIES)},
        optional={"renewable": _FLAGS, "handshake": _FLAGS, "nonreplayable": _FLAGS, "sender": st.text(max_size=6)},
    ),
    extra=st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=3),
    drop=st.sets(st.sampled_from(["messageid", "timestamp", "capabilities"]), max_size=2),
)
def test_generated_header_data_reads_the_same_both_ways(
    session: Session, fmt: EncoderFormat, base: dict[str, Any], extra: dict[str, Any], drop: set[str]
) -> None:
    merged = {**base, **extra}
    # The writer's insertion order (the JSON member order depends on it), then the rest.
    fields = {k: merged[k] for k in [*_WRITER_ORDER, *merged] if k in merged and k not in drop}
    if fmt is BIN:  # mostly the binary format's usual shape: false flags left out
        fields = {k: v for k, v in fields.items() if v is not False or k in extra}
    _check_agreement(session, encode(fields, fmt), fmt)


def _usual_fields(data: st.DataObject, fmt: EncoderFormat) -> dict[str, Any]:
    """Header data of the usual shape, members inserted in the writer's order."""
    fields: dict[str, Any] = {}
    if fmt is JSON and data.draw(st.booleans()):
        fields["sender"] = data.draw(st.sampled_from(["client1", "", "a b", "é"]))
    fields["timestamp"] = 1_700_000_000
    fields["messageid"] = data.draw(_INTS)
    if fmt is JSON:
        fields["nonreplayable"] = False
    for flag in ("renewable", "handshake"):
        value = data.draw(st.booleans())
        if value or fmt is JSON:
            fields[flag] = value
    if data.draw(st.booleans()):
        fields["capabilities"] = data.draw(st.sampled_from(_CAPABILITIES[:5]))
    return fields


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_header_data_reads_the_same_both_ways(
    session: Session, fmt: EncoderFormat, data: st.DataObject
) -> None:
    plaintext = bytearray(encode(_usual_fields(data, fmt), fmt))
    for _ in range(data.draw(st.integers(0, 3))):  # none: the usual shape, read quickly
        at = data.draw(st.integers(0, len(plaintext)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "insert" or at == len(plaintext):
            plaintext[at:at] = bytes([data.draw(st.integers(0, 255))])
        elif action == "flip":
            plaintext[at] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "delete":
            del plaintext[at]
        else:
            del plaintext[at:]
    _check_agreement(session, bytes(plaintext), fmt)


def _map(*pairs: bytes) -> bytes:
    return b"\x1c" + cbor.map_head(len(pairs) // 2) + b"".join(pairs)


_MID, _TS = cbor.encode_text("messageid"), cbor.encode_text("timestamp")
_CAPS_KEY, _CAPS = cbor.encode_text("capabilities"), DEFAULT_CAPABILITIES.cbor_encoded

NEAR_MISSES = {
    "usual": _map(_MID, b"\x05", _TS, b"\x1a\x65\x00\x00\x00", _CAPS_KEY, _CAPS),
    "flags": _map(
        cbor.encode_text("handshake"), b"\xf5", _MID, b"\x05", cbor.encode_text("renewable"), b"\xf5", _TS, b"\x01"
    ),
    "non-minimal message ID": _map(_MID, b"\x18\x05", _TS, b"\x01"),
    "non-minimal timestamp": _map(_MID, b"\x05", _TS, b"\x1a\x00\x00\x00\x07"),
    "message ID out of range": _map(_MID, b"\x1b\x00\x20\x00\x00\x00\x00\x00\x01", _TS, b"\x01"),
    "negative message ID": _map(_MID, b"\x20", _TS, b"\x01"),
    "false flag": _map(cbor.encode_text("handshake"), b"\xf4", _MID, b"\x05", _TS, b"\x01"),
    "count too small": b"\x1c\xa2" + _map(_MID, b"\x05", _TS, b"\x01", _CAPS_KEY, _CAPS)[2:],
    "count too large": b"\x1c\xa3" + _map(_MID, b"\x05", _TS, b"\x01")[2:],
    "keys out of order": _map(_TS, b"\x01", _MID, b"\x05"),
    "sender": _map(_MID, b"\x05", _TS, b"\x01", cbor.encode_text("sender"), b"\x61x"),
    "data after the map": _map(_MID, b"\x05", _TS, b"\x01") + b"\x00",
    "data after the capabilities": _map(_MID, b"\x05", _TS, b"\x01", _CAPS_KEY, _CAPS + b"\x00"),
    "capabilities truncated": _map(_MID, b"\x05", _TS, b"\x01", _CAPS_KEY, _CAPS[:-1]),
    "capabilities not a map": _map(_MID, b"\x05", _TS, b"\x01", _CAPS_KEY, b"\x61x"),
    "nonreplayable": _map(_MID, b"\x05", _TS, b"\x01", cbor.encode_text("nonreplayable"), b"\xf5"),
}


@pytest.mark.parametrize("plaintext", list(NEAR_MISSES.values()), ids=list(NEAR_MISSES))
def test_near_misses_read_the_same_both_ways(session: Session, plaintext: bytes) -> None:
    _check_agreement(session, plaintext)


_JSON_CAPS = b'{"languages":["en-US"],"compressionalgos":["GZIP","LZW"],"encoderformats":["JSON"]}'
_JSON_USUAL = (
    b'{"handshake":false,"nonreplayable":false,"capabilities":%s,"sender":"client1","renewable":true,'
    b'"messageid":8126707032597085,"timestamp":1796539822}'
)
JSON_NEAR_MISSES = {
    "usual": _JSON_USUAL % _JSON_CAPS,
    "no capabilities or sender": (
        b'{"handshake":true,"nonreplayable":false,"renewable":false,"messageid":0,"timestamp":5}'
    ),
    "empty capabilities": _JSON_USUAL % b"{}",
    "empty arrays": _JSON_USUAL % b'{"languages":[],"compressionalgos":[]}',
    "duplicate capability member": _JSON_USUAL % b'{"languages":["a"],"languages":["b"]}',
    "missing comma in capabilities": _JSON_USUAL % b'{"languages":["a"]"encoderformats":["JSON"]}',
    "trailing comma in capabilities": _JSON_USUAL % b'{"languages":["a"],}',
    "non-string capability": _JSON_USUAL % b'{"languages":[1]}',
    "escaped quote in capabilities": _JSON_USUAL % b'{"languages":["a\\"b"]}',
    "message ID out of range": (_JSON_USUAL % _JSON_CAPS).replace(b"8126707032597085", b"9007199254740993"),
    "message ID leading zero": (_JSON_USUAL % _JSON_CAPS).replace(b"8126707032597085", b"08126707032597085"),
    "message ID as a float": (_JSON_USUAL % _JSON_CAPS).replace(b"8126707032597085", b"8126707032597085.0"),
    "message ID with exponent": (_JSON_USUAL % _JSON_CAPS).replace(b"8126707032597085", b"8e15"),
    "negative timestamp": (_JSON_USUAL % _JSON_CAPS).replace(b"1796539822", b"-1796539822"),
    "renewable as a string": (_JSON_USUAL % _JSON_CAPS).replace(b'"renewable":true', b'"renewable":"true"'),
    "nonreplayable true": (_JSON_USUAL % _JSON_CAPS).replace(b'"nonreplayable":false', b'"nonreplayable":true'),
    "sender with an escape": (_JSON_USUAL % _JSON_CAPS).replace(b"client1", b"cl\\u0069ent1"),
    "sender not ASCII": (_JSON_USUAL % _JSON_CAPS).replace(b"client1", "cliént".encode()),
    "sender not UTF-8": (_JSON_USUAL % _JSON_CAPS).replace(b"client1", b"cli\xffnt"),
    "sender a control character": (_JSON_USUAL % _JSON_CAPS).replace(b"client1", b"cli\x01nt"),
    "whitespace": (_JSON_USUAL % _JSON_CAPS).replace(b'"renewable":true', b'"renewable": true'),
    "trailing whitespace": (_JSON_USUAL % _JSON_CAPS) + b" ",
    "data after the object": (_JSON_USUAL % _JSON_CAPS) + b"{}",
    "members reordered": (_JSON_USUAL % _JSON_CAPS).replace(
        b'"handshake":false,"nonreplayable":false', b'"nonreplayable":false,"handshake":false'
    ),
}


@pytest.mark.parametrize("plaintext", list(JSON_NEAR_MISSES.values()), ids=list(JSON_NEAR_MISSES))
def test_json_near_misses_read_the_same_both_ways(session: Session, plaintext: bytes) -> None:
    _check_agreement(session, plaintext, JSON)


@pytest.mark.parametrize(("fmt", "capabilities"), [(BIN, DEFAULT_CAPABILITIES), (JSON, JSON_PREFERRED)])
def test_ordinary_headers_are_read_quickly_once_their_capabilities_are_known(
    session: Session, fmt: EncoderFormat, capabilities: MessageCapabilities
) -> None:
    header = build_request(session.client, encoder_format=fmt, renewable=True, capabilities=capabilities).header
    plaintext = header.crypto_context.decrypt(header.headerdata)
    assert type(header_module._quick_header_data(plaintext)) is bytes  # capabilities not known yet
    received = MessageHeader.parse(session.server, decode(header.encode()))
    quick = header_module._quick_header_data(plaintext)
    assert isinstance(quick, HeaderData) and quick == received.data
    assert quick.message_id == header.message_id and quick.renewable and quick.capabilities == capabilities
    assert quick.sender == (session.client.identity if fmt is JSON else None)
    assert _outcome(session.server, header.encode())[1][0] == received.data


def test_remembered_capabilities_are_bounded(session: Session) -> None:
    for n in range(header_module._QUICK_CAPABILITIES_MAX + 10):
        header_module._remember_capabilities(bytes([n]), DEFAULT_CAPABILITIES)
    assert len(header_module._QUICK_CAPABILITIES) == header_module._QUICK_CAPABILITIES_MAX


def test_large_capabilities_are_not_remembered(session: Session) -> None:
    large = b"{" + b" " * header_module._QUICK_CAPABILITIES_MAX_SIZE + b"}"
    header_module._remember_capabilities(large, DEFAULT_CAPABILITIES)
    assert large not in header_module._QUICK_CAPABILITIES
    languages = tuple(f"x-{n:04}" for n in range(200))
    header = build_request(
        session.client, encoder_format=BIN, capabilities=MessageCapabilities(languages=languages)
    ).header
    assert MessageHeader.parse(session.server, decode(header.encode())).data.capabilities == header.data.capabilities
    assert not header_module._QUICK_CAPABILITIES  # parsed by the general path, not kept


def test_the_error_of_a_bad_message_id_is_the_general_paths(session: Session) -> None:
    header = build_request(session.client, encoder_format=BIN).header
    wire = _wire(header, NEAR_MISSES["message ID out of range"])
    with pytest.raises(MslException) as info:
        MessageHeader.parse(session.server, decode(wire))
    assert info.value.error is MslError.MESSAGE_ID_OUT_OF_RANGE


# -- writing: JSON header data put together from encoded members ---------------------------


def _written(write: Any) -> tuple[str, Any]:
    try:
        return "bytes", write()
    except MslException as exc:
        return "error", exc.error


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    message_id=st.one_of(_INTS, st.booleans()),
    timestamp=st.one_of(_INTS, st.booleans()),
    renewable=st.one_of(st.booleans(), st.integers(0, 2)),
    handshake=st.one_of(st.booleans(), st.integers(0, 2)),
    non_replayable_id=st.one_of(st.none(), st.integers(0, 10), _INTS, st.booleans()),
    capabilities=st.sampled_from(
        [
            None,
            JSON_PREFERRED,
            DEFAULT_CAPABILITIES,
            MessageCapabilities(),
            MessageCapabilities(languages=("é", 'a"b', "\\", "\x00")),
        ]
    ),
    sender=st.one_of(st.none(), st.text(max_size=8), st.sampled_from(["client1", "\ud800", 'q"uote', "tab\t"])),
)
def test_json_header_data_written_quickly_is_what_the_general_writer_writes(
    session: Session,
    message_id: int,
    timestamp: int,
    renewable: bool,
    handshake: bool,
    non_replayable_id: int | None,
    capabilities: MessageCapabilities | None,
    sender: str | None,
) -> None:
    data = HeaderData(
        message_id=message_id,
        renewable=renewable,
        handshake=handshake,
        non_replayable_id=non_replayable_id,
        capabilities=capabilities,
    )
    ctx = session.client
    expected = _written(lambda: encode_json(header_module._json_header_data(ctx, data, sender, timestamp)))
    assert _written(lambda: header_module._json_header_data_bytes(ctx, data, sender, timestamp)) == expected


def test_an_ordinary_json_header_is_written_as_before(session: Session) -> None:
    header = build_request(session.client, encoder_format=JSON).header
    data = header.data
    assert data.timestamp is not None
    general = encode_json(
        header_module._json_header_data(session.client, data, session.client.identity, data.timestamp)
    )
    assert header.crypto_context.decrypt(header.headerdata) == general

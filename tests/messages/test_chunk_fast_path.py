"""The canonical-form fast path of chunk plaintext parsing agrees with the general parser."""

from __future__ import annotations

import base64
import os

import pytest

from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import decode, encode
from missile.errors import MslException
from missile.messages import payload as payload_module
from missile.messages.payload import PayloadChunk

CRYPTO = SymmetricCryptoContext("k", os.urandom(16), os.urandom(32))
DATA = base64.b64encode(os.urandom(3000)).decode()


def _plain(head: str, data: str = DATA) -> bytes:
    return ("{" + head + ',"data":"' + data + '"}').encode()


CASES = {
    "canonical": _plain('"sequencenumber":1,"messageid":42'),
    "end of message": _plain('"sequencenumber":7,"messageid":42,"endofmsg":true'),
    "end false": _plain('"sequencenumber":7,"messageid":42,"endofmsg":false'),
    "compressed": _plain('"sequencenumber":2,"messageid":0,"compressionalgo":"GZIP"', ""),
    "unknown algorithm": _plain('"sequencenumber":2,"messageid":1,"compressionalgo":"ZSTD"'),
    "empty data, not end": _plain('"sequencenumber":2,"messageid":1', ""),
    "empty data, end": _plain('"sequencenumber":2,"messageid":1,"endofmsg":true', ""),
    "leading zero": _plain('"sequencenumber":01,"messageid":1'),
    "out of range": _plain('"sequencenumber":9007199254740993,"messageid":1'),
    "negative message id": _plain('"sequencenumber":1,"messageid":-1'),
    "bad base64": _plain('"sequencenumber":1,"messageid":1', "A" * 4097),
    "escaped slash": _plain('"sequencenumber":1,"messageid":1', DATA.replace("/", "\\\\/")),
    "reordered": ('{"messageid":1,"sequencenumber":1,"data":"' + DATA + '"}').encode(),
    "quote in data": _plain('"sequencenumber":1,"messageid":1', 'AB"CD'),
    "extra key": _plain('"sequencenumber":1,"messageid":1,"extra":1'),
}


def _outcome(plaintext: bytes) -> object:
    chunk = encode({"payload": CRYPTO.encrypt(plaintext), "signature": b""})
    obj = decode(chunk)
    envelope = obj.get_bytes("payload")
    obj = decode(encode({"payload": envelope, "signature": CRYPTO.sign(envelope)}))
    try:
        c = PayloadChunk.parse(obj, CRYPTO, max_deflate_ratio=200)
    except MslException as exc:
        return exc.error
    return (c.sequence_number, c.message_id, c.end_of_message, c.compression_algo, c.data)


@pytest.mark.parametrize("name", list(CASES))
def test_fast_path_agrees_with_the_general_parser(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _outcome(CASES[name])
    monkeypatch.setattr(payload_module, "_canonical_fields", lambda *_args: None)
    assert fast == _outcome(CASES[name])


def test_canonical_chunk_is_read() -> None:
    assert _outcome(CASES["end of message"]) == (7, 42, True, None, base64.b64decode(DATA))

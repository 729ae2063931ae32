"""JSON member order as the reference writes it (issue #15 item 4; codec.java_order).

The model (Java HashMap iteration order) is checked against every object of the Java
vectors, outer objects and decrypted plaintexts alike, and missile's own JSON output is
checked to follow it."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

import vectorlib
from missile.encoding import ObjectStreamDecoder, encode
from missile.encoding.codec import java_order
from missile.errors import MslException
from missile.keyfile import KeyFile
from missile.messages import HeaderReceived, MessageReader
from missile.profiles import context_from_keyfile

STEMS = vectorlib.stems(1, 56)


def _orders(text: bytes) -> list[tuple[str, ...]]:
    """The member order of every object in ``text``, outermost last."""
    found: list[tuple[str, ...]] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found.append(tuple(k for k, _ in pairs))
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return found


def _java_texts(stem: str) -> list[bytes]:
    """The vector's objects as the reference wrote them: the top-level objects, and the
    decrypted header data when the receiver can open it."""
    vector = vectorlib.load(stem)
    message = base64.b64decode(vector["message_b64"])
    decoder = ObjectStreamDecoder()
    decoder.feed(message)
    texts = []
    while (raw := decoder.next_raw()) is not None:
        texts.append(raw)
    keys = KeyFile.from_dict(vector["keys"])
    ctx = context_from_keyfile(keys, allowed_insecure_schemes=frozenset({"NONE", "NONE_SUFFIXED", "JWK_RSAES"}))
    try:
        reader = MessageReader(ctx.ctx, service_token_contexts=keys.service_token_crypto_contexts())
        event = reader.feed(message)[0]
    except MslException:  # vectors that need more state: their outer objects are checked
        return texts
    if isinstance(event, HeaderReceived):
        header = event.header
        texts.append(header.crypto_context.decrypt(header.headerdata))
        texts.append(header.headerdata)
    return [t for t in texts if t[:1] == b"{"]


@pytest.mark.parametrize("stem", STEMS)
def test_the_model_predicts_the_reference_order(stem: str) -> None:
    checked = 0
    for text in _java_texts(stem):
        for keys in _orders(text):
            assert java_order(keys) == keys, (stem, keys)
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("stem", STEMS)
def test_missile_writes_the_reference_order(stem: str) -> None:
    for text in _java_texts(stem):
        again = encode(json.loads(text))
        assert _orders(again) == _orders(text), stem


def test_known_orders() -> None:
    assert java_order(("mastertoken", "headerdata", "signature")) == ("headerdata", "signature", "mastertoken")
    assert java_order(("entityauthdata", "headerdata", "signature")) == ("headerdata", "signature", "entityauthdata")
    assert java_order(("keyid", "iv", "ciphertext", "sha256")) == ("ciphertext", "sha256", "keyid", "iv")
    # Non-ASCII keys hash by UTF-16 code units, as Java strings do.
    assert set(java_order(("é", "😀", "a"))) == {"é", "😀", "a"}

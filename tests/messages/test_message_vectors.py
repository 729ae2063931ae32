"""Every message vector (01-56) decodes to exactly its expected content."""

from __future__ import annotations

from typing import Any

import pytest

import vectorlib
from messages.vector_decoding import decode_vector

MESSAGE_STEMS = vectorlib.stems(1, 56)

HEADER_FIELDS = [
    "messageid",
    "nonreplayableid",
    "renewable",
    "handshake",
    "timestamp",
    "capabilities",
    "encrypting",
    "entityauthdata",
    "user",
    "userauthdata",
    "keyrequestdata",
    "headerdata_plaintext",
]
TOKEN_FIELDS = [
    "serialnumber",
    "sequencenumber",
    "mtserialnumber",
    "renewalwindow",
    "expiration",
    "decrypted",
    "verified",
    "tokendata_plaintext",
    "identity",
    "issuerdata",
    "encryptionkey_b64",
    "hmackey_b64",
    "user",
]


def _sorted_requests(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import json

    return sorted(items, key=lambda r: json.dumps(r, sort_keys=True))


def _check_token(actual: dict[str, Any] | None, expected: dict[str, Any] | None, what: str) -> None:
    if expected is None:
        assert actual is None, what
        return
    assert actual is not None, what
    for key in TOKEN_FIELDS:
        if key in expected:
            assert actual[key] == expected[key], f"{what}.{key}"


def _check_crypto(actual: dict[str, Any] | None, expected: dict[str, Any] | None, what: str) -> None:
    if expected is None:
        assert actual is None, what
        return
    assert actual is not None, what
    for key in ("keyid", "encryption_key_b64", "hmac_key_b64"):
        if key in expected:
            assert actual.get(key) == expected[key], f"{what}.{key}"


@pytest.mark.parametrize("stem", MESSAGE_STEMS)
def test_message_vector(stem: str) -> None:
    vector = vectorlib.load(stem)
    expected = vector["expected"]
    assert expected["ok"] is True
    actual = decode_vector(vector)
    assert actual["kind"] == expected["kind"]
    assert actual["num_wire_objects"] == expected["num_wire_objects"]
    if expected["kind"] == "error":
        exp = expected["errorheader"]
        for key, value in actual["errorheader"].items():
            assert value == exp[key], key
        return

    exp_header = expected["header"]
    header = actual["header"]
    for key in HEADER_FIELDS:
        exp_value = exp_header[key]
        if key == "keyrequestdata":
            assert _sorted_requests(header[key]) == _sorted_requests(exp_value), key
        else:
            assert header[key] == exp_value, key
    _check_token(header["mastertoken"], exp_header["mastertoken"], "mastertoken")
    _check_token(header["useridtoken"], exp_header["useridtoken"], "useridtoken")
    exp_krd = exp_header["keyresponsedata"]
    if exp_krd is None:
        assert header["keyresponsedata"] is None
    else:
        krd = header["keyresponsedata"]
        assert krd["scheme"] == exp_krd["scheme"]
        assert krd["keydata"] == exp_krd["keydata"]
        _check_token(krd["mastertoken"], exp_krd["mastertoken"], "keyresponsedata.mastertoken")
    exp_tokens = sorted(exp_header["servicetokens"], key=lambda t: t["name"])
    assert len(header["servicetokens"]) == len(exp_tokens)
    for got, want in zip(header["servicetokens"], exp_tokens, strict=True):
        for key, value in got.items():
            assert value == want[key], f"servicetoken {want['name']}.{key}"
    _check_crypto(header["header_crypto_context"], exp_header.get("header_crypto_context"), "header context")
    _check_crypto(actual["payload_crypto_context"], expected.get("payload_crypto_context"), "payload context")
    if expected.get("key_exchange_crypto_context") is not None:
        _check_crypto(
            actual["key_exchange_crypto_context"], expected["key_exchange_crypto_context"], "key exchange context"
        )
    exp_chunks = expected.get("payload_chunks", [])
    assert len(actual["payload_chunks"]) == len(exp_chunks)
    for got, want in zip(actual["payload_chunks"], exp_chunks, strict=True):
        for key, value in got.items():
            assert value == want[key], f"chunk {want['sequencenumber']}.{key}"
    assert actual["payload_b64"] == (expected.get("payload_b64") or "")
    if "is_handshake" in expected:
        assert actual["is_handshake"] == expected["is_handshake"]
    assert actual["ended"]


@pytest.mark.parametrize("stem", MESSAGE_STEMS[::7])
@pytest.mark.parametrize("split", [1, 7, 64])
def test_message_vector_any_split(stem: str, split: int) -> None:
    vector = vectorlib.load(stem)
    whole = decode_vector(vector)
    pieces = decode_vector(vector, split=split)
    assert [type(e) for e in pieces["events"]] == [type(e) for e in whole["events"]]
    pieces.pop("events")
    whole.pop("events")
    assert pieces == whole

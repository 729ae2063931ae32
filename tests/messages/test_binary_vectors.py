"""The checked-in binary-format vectors (tests/vectors-binary/) decode to their expected
content; the transcoded ones mean what their Java originals mean; the structure
examples are what the encoder writes today, and are the hex of docs/binary-format.md."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

import vectorlib
from messages.vector_decoding import decode_vector
from missile.encoding import EncoderFormat, ObjectStreamDecoder, decode, encode
from missile.errors import MslException

BIN = EncoderFormat.MISSILE_CBOR
REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors-binary"
DOC = REPO / "docs" / "binary-format.md"
STEMS = sorted(p.stem for p in VECTORS.glob("[0-9][0-9]_*.json"))


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("binary_vector_generator", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()


def _load(stem: str) -> dict[str, Any]:
    return dict(json.loads((VECTORS / f"{stem}.json").read_text()))


def _decoded(vector: dict[str, Any], split: int | None = None) -> dict[str, Any]:
    out = decode_vector(vector, split=split)
    out.pop("events")
    return dict(json.loads(json.dumps(GENERATOR.plain(out))))


def test_there_are_vectors_for_requests_responses_and_errors() -> None:
    kinds = {(_load(s)["direction"], _load(s)["expected"]["kind"]) for s in STEMS}
    assert {("request", "message"), ("response", "message"), ("response", "error")} <= kinds
    assert len(STEMS) >= 20


@pytest.mark.parametrize("stem", STEMS)
def test_binary_vector_decodes_to_its_expected_content(stem: str) -> None:
    vector = _load(stem)
    assert vector["encoder_format"] == BIN.value
    message = base64.b64decode(vector["message_b64"])
    decoder = ObjectStreamDecoder()
    decoder.feed(message)
    while (raw := decoder.next_raw()) is not None:
        assert raw[0] == BIN.identifier  # every object of the message is in the binary format
    assert _decoded(vector) == vector["expected"]
    assert _decoded(vector, split=7) == vector["expected"]


MEANING_FIELDS = ["messageid", "nonreplayableid", "renewable", "handshake", "timestamp", "capabilities", "encrypting"]
MEANING_FIELDS += ["entityauthdata", "user", "userauthdata", "keyrequestdata", "servicetokens"]


@pytest.mark.parametrize("stem", [s for s in STEMS if _load(s).get("source")])
def test_transcoded_vector_means_what_the_java_vector_means(stem: str) -> None:
    vector = _load(stem)
    original = vectorlib.load(vector["source"])["expected"]
    got = _decoded(vector)
    assert got["kind"] == original["kind"] == "message"
    for key in MEANING_FIELDS:
        want = original["header"][key]
        have = got["header"][key]
        if key == "keyrequestdata":
            want = sorted(json.dumps(r, sort_keys=True) for r in want)
            have = sorted(json.dumps(r, sort_keys=True) for r in have)
        if key == "servicetokens":
            want = [{k: t[k] for k in ("name", "data_b64", "mtserialnumber", "uitserialnumber")} for t in want]
            have = [{k: t[k] for k in ("name", "data_b64", "mtserialnumber", "uitserialnumber")} for t in have]
        assert have == want, key
    for token in ("mastertoken", "useridtoken"):
        want_token, have_token = original["header"][token], got["header"][token]
        assert (want_token is None) == (have_token is None)
        if want_token is not None:
            # The token travels as it was issued: same token data, same meaning.
            assert have_token["tokendata_plaintext"] == want_token["tokendata_plaintext"]
    assert [c["data_b64"] for c in got["payload_chunks"]] == [c["data_b64"] for c in original["payload_chunks"]]
    assert [c["compressionalgo"] for c in got["payload_chunks"]] == [
        c["compressionalgo"] for c in original["payload_chunks"]
    ]


def test_a_tampered_vector_is_refused() -> None:
    vector = _load(STEMS[0])
    message = bytearray(base64.b64decode(vector["message_b64"]))
    message[len(message) // 2] ^= 0x01
    with pytest.raises(MslException):
        decode_vector({**vector, "message_b64": base64.b64encode(bytes(message)).decode()})


STRUCTURES = json.loads((VECTORS / "structures.json").read_text())["structures"]


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_structure_example_decodes_and_reencodes(name: str) -> None:
    data = bytes.fromhex(STRUCTURES[name]["hex"])
    obj = decode(data)
    assert obj.binary
    assert GENERATOR.plain(obj.to_dict()) == STRUCTURES[name]["value"]
    assert encode(obj, BIN) == data


def test_structures_are_what_the_encoder_writes_today() -> None:
    assert GENERATOR.structures()["structures"] == STRUCTURES


def test_the_documents_hex_examples_are_the_vectors() -> None:
    text = DOC.read_text()
    examples = re.findall(r"<!-- example: (\w+) -->\s*```text\n(.*?)```", text, re.S)
    assert len(examples) >= 8
    for name, block in examples:
        hex_text = "".join(line.split("|")[0] for line in block.splitlines()).replace(" ", "")
        assert hex_text == STRUCTURES[name]["hex"], name

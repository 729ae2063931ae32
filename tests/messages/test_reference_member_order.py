"""JSON members in the reference's order (issue #15 item 4): ciphertext envelopes
(``ciphertext``, ``sha256``, ``keyid``, ``iv``) and payload chunk plaintexts (``data``,
``messageid``, ``compressionalgo``, ``endofmsg``, ``sequencenumber``), as the Java
reference writes them (``java.util.HashMap`` order, spec/interop.md).

The proof is byte equality with the reference's own output: every payload chunk and
header envelope of the Java vectors that missile can open with the vector's keys is
sealed again by missile, with the vector's IV, and must come out byte for byte as the
reference wrote it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from missile.crypto.chunks import ChunkHead, GeneralChunkCodec
from missile.crypto.envelopes import encode_v1
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.crypto.symmetric_chunks import SymmetricChunkCodec
from missile.encoding import EncoderFormat
from missile.encoding.codec import java_order
from vectorlib import load, stems


class _Replay:
    """Hands out the IVs the reference used, in order."""

    def __init__(self, *ivs: bytes) -> None:
        self._ivs = list(ivs)

    def random_bytes(self, n: int) -> bytes:
        iv = self._ivs.pop(0)
        assert len(iv) == n
        return iv


def _objects(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The wire objects of a vector, each with its exact text."""
    decoder = json.JSONDecoder()
    out, at = [], 0
    while at < len(text):
        obj, end = decoder.raw_decode(text, at)
        out.append((text[at:end], obj))
        at = end
    return out


def _open(key: bytes, envelope: bytes) -> bytes:
    fields = json.loads(envelope)
    iv, ciphertext = base64.b64decode(fields["iv"]), base64.b64decode(fields["ciphertext"])
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    plain = decryptor.update(ciphertext) + decryptor.finalize()
    return plain[: -plain[-1]]


def _session_keys(vector: dict[str, Any], header: dict[str, Any]) -> tuple[bytes, bytes] | None:
    """The keys protecting the payload: the master token's session keys or the PSK
    client's keys; None for other schemes (their chunks are not looked at here)."""
    keys = vector["keys"]
    if "mastertoken" in header:
        tokendata = json.loads(base64.b64decode(header["mastertoken"]["tokendata"]))
        token_keys = keys["msl_token_keys"]
        session = json.loads(
            _open(base64.b64decode(token_keys["encryption_b64"]), base64.b64decode(tokendata["sessiondata"]))
        )
        return base64.b64decode(session["encryptionkey"]), base64.b64decode(session["hmackey"])
    auth = header.get("entityauthdata", {})
    if auth.get("scheme") == "PSK" and vector["direction"] == "request":
        (psk,) = [p for p in keys["psk"] if p["identity"] == auth["authdata"]["identity"]]
        return base64.b64decode(psk["encryption_b64"]), base64.b64decode(psk["hmac_b64"])
    return None


def _chunks() -> list[tuple[str, int, bytes, bytes, str]]:
    """(vector, index, encryption key, HMAC key, chunk text) for every chunk whose keys
    are known and whose MAC verifies with them."""
    out = []
    for stem in stems():
        vector = load(stem)
        if "message_text" not in vector:
            continue
        objects = _objects(vector["message_text"])
        keys = _session_keys(vector, objects[0][1])
        if keys is None:
            continue
        for index, (text, obj) in enumerate(objects[1:], 1):
            mac = hmac.new(keys[1], base64.b64decode(obj["payload"]), hashlib.sha256).digest()
            if mac == base64.b64decode(obj["signature"]):  # not so for a key response's new keys
                out.append((stem, index, keys[0], keys[1], text))
    return out


CHUNKS = _chunks()


def test_the_vectors_hold_enough_chunks() -> None:
    assert len(CHUNKS) >= 20 and any("gzip" in c[0] for c in CHUNKS) and any("lzw" in c[0] for c in CHUNKS)


@pytest.mark.parametrize(
    ("stem", "index", "encryption_key", "hmac_key", "text"), CHUNKS, ids=[f"{c[0]}-{c[1]}" for c in CHUNKS]
)
def test_missile_seals_the_reference_chunk_byte_for_byte(
    stem: str, index: int, encryption_key: bytes, hmac_key: bytes, text: str
) -> None:
    envelope = base64.b64decode(json.loads(text)["payload"])
    envelope_fields = json.loads(envelope)
    assert list(envelope_fields) == ["ciphertext", "sha256", "keyid", "iv"]
    plaintext = json.loads(_open(encryption_key, envelope))
    assert list(plaintext) == list(java_order(tuple(plaintext)))
    head = ChunkHead(
        plaintext["sequencenumber"],
        plaintext["messageid"],
        plaintext.get("endofmsg", False),
        plaintext.get("compressionalgo"),
    )
    data = base64.b64decode(plaintext["data"])
    iv = base64.b64decode(envelope_fields["iv"])
    for streaming in (True, False):
        ctx = SymmetricCryptoContext(envelope_fields["keyid"], encryption_key, hmac_key, random=_Replay(iv))
        codec = ctx.chunk_codec(EncoderFormat.JSON) if streaming else GeneralChunkCodec(ctx, EncoderFormat.JSON)
        assert isinstance(codec, SymmetricChunkCodec) is streaming
        assert codec.seal(head, data) == text.encode()


@pytest.mark.parametrize("stem", [s for s in stems() if "message_text" in load(s)])
def test_missile_writes_the_reference_header_envelope_byte_for_byte(stem: str) -> None:
    """A header's ``headerdata`` envelope, re-encrypted with the reference's key ID and
    IV, is the reference's envelope (every vector whose header is encrypted under keys
    the vector gives)."""
    vector = load(stem)
    header = _objects(vector["message_text"])[0][1]
    keys = _session_keys(vector, header)
    if keys is None or "headerdata" not in header:
        pytest.skip("header keys not in the vector")
    envelope = base64.b64decode(header["headerdata"])
    fields = json.loads(envelope)
    iv = base64.b64decode(fields["iv"])
    ctx = SymmetricCryptoContext(fields["keyid"], keys[0], keys[1], random=_Replay(iv))
    assert ctx.encrypt(_open(keys[0], envelope)) == envelope


def test_envelope_members_without_an_iv() -> None:
    assert (
        encode_v1("rsakeyid1", None, b"\x99" * 8)
        == b'{"ciphertext":"mZmZmZmZmZk=","sha256":"AA==","keyid":"rsakeyid1"}'
    )
    assert java_order(("keyid", "iv", "ciphertext", "sha256")) == ("ciphertext", "sha256", "keyid", "iv")

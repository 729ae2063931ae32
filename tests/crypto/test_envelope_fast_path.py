"""The canonical-form fast path of CiphertextEnvelope.parse agrees with the general parser."""

from __future__ import annotations

import base64
import os

import pytest

from missile.crypto import envelopes
from missile.crypto.envelopes import CiphertextEnvelope, EnvelopeVersion, encode_v1
from missile.errors import MslException

CT = os.urandom(4096)
IV = os.urandom(16)
B64_CT = base64.b64encode(CT).decode()
B64_IV = base64.b64encode(IV).decode()


def _outcome(parse: object) -> object:
    try:
        env = parse()  # type: ignore[operator]
    except MslException as exc:
        return exc.error
    return (env.version, env.key_id, env.iv, env.ciphertext)


def _env(
    keyid: str = "k", iv: str | None = B64_IV, ct: str = B64_CT, sha: str = "AA==", iv_first: bool = False
) -> bytes:
    """An envelope written by hand (field text inserted verbatim, already JSON-escaped)."""
    fields = [f'"keyid":"{keyid}"', f'"ciphertext":"{ct}"', f'"sha256":"{sha}"']
    if iv is not None:
        fields.insert(0 if iv_first else 1, f'"iv":"{iv}"')
    return ("{" + ",".join(fields) + "}").encode()


CASES = {
    "canonical": encode_v1("client1_7", IV, CT),
    "canonical by hand": _env("client1_7"),
    "escaped key id": _env('a\\"b'),
    "escaped slash in ciphertext": _env(ct=B64_CT.replace("/", "\\/")),
    "reordered keys": _env(iv_first=True),
    "bad base64 ciphertext": _env(ct="A" * 4097),
    "bad base64 iv": _env(iv="A"),
    "quote inside ciphertext": _env(ct='AB"CD'),
    "no iv": _env(iv=None),
    "other sha256": _env(sha="AQ=="),
    "non-ASCII key id": _env("clé"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_fast_path_agrees_with_the_general_parser(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = CASES[name]
    fast = _outcome(lambda: CiphertextEnvelope.parse(data, EnvelopeVersion.V1))
    monkeypatch.setattr(envelopes, "_parse_v1_as_written", lambda _data: None)
    assert fast == _outcome(lambda: CiphertextEnvelope.parse(data, EnvelopeVersion.V1))


def test_canonical_envelope_round_trips() -> None:
    env = CiphertextEnvelope.parse(CASES["canonical"], EnvelopeVersion.V1)
    assert (env.key_id, env.iv, env.ciphertext) == ("client1_7", IV, CT)

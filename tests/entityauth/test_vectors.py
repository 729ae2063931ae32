"""Entity auth data inside the Java vectors: parse, identity, and header signature check."""

from __future__ import annotations

import json
from typing import Any

import pytest

import vectorlib
from missile.clock import FixedClock
from missile.context import INSECURE_SCHEMES, MslContext
from missile.crypto.null import ClientMslCryptoContext
from missile.encoding import MslObject
from missile.entityauth import entity_auth_from_keyfile, parse_entity_auth_data
from missile.keyfile import KeyFile


def first_object(vector: dict[str, Any]) -> dict[str, Any]:
    text = vectorlib.b64(vector["message_b64"]).decode("utf-8")
    obj, _ = json.JSONDecoder().raw_decode(text)
    assert isinstance(obj, dict)
    return obj


def _has_entity_auth(stem: str) -> bool:
    vector = vectorlib.load(stem)
    return "message_b64" in vector and "entityauthdata" in first_object(vector)


STEMS = [s for s in vectorlib.stems() if _has_entity_auth(s)]


def context_for(keys: KeyFile) -> MslContext:
    _, factories = entity_auth_from_keyfile(keys)
    return MslContext(
        msl_crypto=keys.msl_crypto_context() or ClientMslCryptoContext(),
        entity_auth_factories=factories,
        clock=FixedClock(keys.time_ms or 0),
        allowed_insecure_schemes=INSECURE_SCHEMES,
    )


def test_expected_schemes_are_covered() -> None:
    schemes = {first_object(vectorlib.load(s))["entityauthdata"]["scheme"] for s in STEMS}
    assert schemes == {"PSK", "RSA", "NONE", "NONE_SUFFIXED"}
    assert {"01_a_psk_request_encrypted", "50_i_rsa_request", "53_i_none_request"} <= set(STEMS)
    assert "55_i_none_suffixed_request" in STEMS and "36_g_error_fail" in STEMS


@pytest.mark.parametrize("stem", STEMS)
def test_vector_entity_auth_verifies_header(stem: str) -> None:
    vector = vectorlib.load(stem)
    keys = KeyFile.from_dict(vector["keys"])
    ctx = context_for(keys)
    header = first_object(vector)
    data = parse_entity_auth_data(MslObject(header["entityauthdata"]), ctx)

    expected_header = vector["expected"].get("header") or vector["expected"]["errorheader"]
    expected = expected_header["entityauthdata"]
    assert data.scheme == expected["scheme"]
    assert data.identity == expected["identity"]
    assert dict(data.authdata()) == expected["authdata"]

    context = ctx.entity_auth_factories[data.scheme].crypto_context(ctx, data)
    signed = vectorlib.b64(header["headerdata"] if "headerdata" in header else header["errordata"])
    signature = vectorlib.b64(header["signature"])
    if data.scheme.startswith("NONE"):
        assert signature == b""
        assert json.loads(signed)  # plaintext JSON header data
    else:
        assert context.verify(signed, signature)
        assert not context.verify(signed[:-1] + bytes([signed[-1] ^ 1]), signature)


@pytest.mark.parametrize(
    "stem", ["01_a_psk_request_encrypted", "36_g_error_fail", "51_i_rsa_response", "54_i_none_response"]
)
def test_local_entity_auth_data_from_keyfile(stem: str) -> None:
    keys = KeyFile.from_dict(vectorlib.load(stem)["keys"])
    data, factories = entity_auth_from_keyfile(keys)
    assert data is not None
    assert data.identity == keys.identity
    ctx = context_for(keys)
    context = factories[data.scheme].crypto_context(ctx, data)
    # The local entity can protect its own headers and the same context verifies them.
    signature = context.sign(b"local header")
    assert context.verify(b"local header", signature)

"""The standalone token vectors 57-63 decode to exactly their expected content."""

from __future__ import annotations

from typing import Any

import pytest

import vectorlib
from missile.clock import FixedClock
from missile.encoding import decode, encode
from missile.keyfile import KeyFile
from missile.tokens import MasterToken, ServiceToken, UserIdToken


def _context(stem: str) -> tuple[dict[str, Any], KeyFile, FixedClock]:
    vector = vectorlib.load(stem)
    keys = KeyFile.from_dict(vector["keys"])
    assert keys.time_ms is not None
    return vector, keys, FixedClock(keys.time_ms)


def _bound(keys: KeyFile, clock: FixedClock) -> tuple[MasterToken | None, UserIdToken | None]:
    msl = keys.msl_crypto_context()
    assert msl is not None
    mt = MasterToken.parse(decode(keys.bound_master_token), msl, clock=clock) if keys.bound_master_token else None
    uit = (
        UserIdToken.parse(decode(keys.bound_user_id_token), msl, mt, clock=clock)
        if keys.bound_user_id_token
        else None
    )
    return mt, uit


@pytest.mark.parametrize("stem", vectorlib.stems(57, 57))
def test_master_token_vector(stem: str) -> None:
    vector, keys, clock = _context(stem)
    msl = keys.msl_crypto_context()
    assert msl is not None
    raw = vectorlib.b64(vector["token_b64"])
    token = MasterToken.parse(decode(raw), msl, clock=clock)
    exp = vector["expected"]["mastertoken"]
    assert token.serial_number == exp["serialnumber"]
    assert token.sequence_number == exp["sequencenumber"]
    assert token.renewal_window == exp["renewalwindow"]
    assert token.expiration == exp["expiration"]
    assert token.verified is exp["verified"]
    assert token.decrypted is exp["decrypted"]
    assert token.identity == exp["identity"]
    assert token.issuer_data == exp["issuerdata"]
    assert token.encryption_key == vectorlib.b64(exp["encryptionkey_b64"])
    assert token.signature_key == vectorlib.b64(exp["hmackey_b64"])
    assert decode(token.tokendata).to_dict() == exp["tokendata_plaintext"]
    assert not token.is_expired()
    assert not token.is_renewable()
    # Re-encoding a received token emits its original bytes.
    again = decode(encode({"mastertoken": token})).get_object("mastertoken")
    assert again.get_bytes("tokendata") == token.tokendata
    assert again.get_bytes("signature") == token.signature
    assert again.to_dict() == decode(raw).to_dict()


@pytest.mark.parametrize("stem", vectorlib.stems(58, 58))
def test_user_id_token_vector(stem: str) -> None:
    vector, keys, clock = _context(stem)
    msl = keys.msl_crypto_context()
    assert msl is not None
    mt, _ = _bound(keys, clock)
    token = UserIdToken.parse(decode(vectorlib.b64(vector["token_b64"])), msl, mt, clock=clock)
    exp = vector["expected"]["useridtoken"]
    assert token.serial_number == exp["serialnumber"]
    assert token.mt_serial_number == exp["mtserialnumber"]
    assert token.renewal_window == exp["renewalwindow"]
    assert token.expiration == exp["expiration"]
    assert token.verified is exp["verified"]
    assert token.decrypted is exp["decrypted"]
    assert token.user is not None and token.user.identity == exp["user"]
    assert token.issuer_data == exp["issuerdata"]
    assert decode(token.tokendata).to_dict() == exp["tokendata_plaintext"]
    assert token.is_bound_to(mt)


@pytest.mark.parametrize("stem", vectorlib.stems(59, 63))
def test_service_token_vector(stem: str) -> None:
    vector, keys, clock = _context(stem)
    mt, uit = _bound(keys, clock)
    token = ServiceToken.parse(
        decode(vectorlib.b64(vector["token_b64"])), keys.service_token_crypto_contexts(), mt, uit
    )
    exp = vector["expected"]["servicetoken"]
    assert token.name == exp["name"]
    assert token.mt_serial_number == exp["mtserialnumber"]
    assert token.uit_serial_number == exp["uitserialnumber"]
    assert token.encrypted is exp["encrypted"]
    assert (token.compression_algo.value if token.compression_algo else None) == exp["compressionalgo"]
    assert token.verified is exp["verified"]
    assert token.decrypted is exp["decrypted"]
    assert token.deleted is exp["deleted"]
    assert token.data == vectorlib.b64(exp["data_b64"])
    assert token.data.decode() == exp["data_text"]
    assert decode(token.tokendata).to_dict() == exp["tokendata_plaintext"]

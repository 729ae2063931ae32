"""Tokens issued in the binary format (docs/binary-format.md §7): the factory issues in
the format it is asked for (a key exchange passes the response's format on), JSON
unless told otherwise and always with ``binary_tokens=False``; a binary token's session data is lean
and reads back to the same keys; renewal may change a token's format; tokens parse and
verify the same whatever the format of the message around them."""

from __future__ import annotations

import pytest
from tests.keyx import StubEntityAuth, psk_lookup, responder

from missile.clock import FixedClock
from missile.context import MslContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import EncoderFormat, MslObject, decode, encode
from missile.errors import MslEncodingException, MslError
from missile.keyx import SymmetricWrappedRequest
from missile.keyx.symmetric_wrapped import SymmetricWrappedExchange
from missile.tokens import MasterToken, MslUser, UserIdToken
from missile.tokens.factory import TokenFactory

BIN = EncoderFormat.MISSILE_CBOR
JSON = EncoderFormat.JSON
MSL = SymmetricCryptoContext("msl", bytes(range(16)), bytes(range(32, 64)))
KE, KH = bytes(range(16)), bytes(range(32))
NOW = 1_700_000_000_123


def _ctx() -> MslContext:
    return MslContext(msl_crypto=MSL, clock=FixedClock(NOW))


def _format(data: bytes) -> EncoderFormat:
    return BIN if data[0] == BIN.identifier else JSON


def _reparsed(token: MasterToken, carrier: EncoderFormat) -> MasterToken:
    """``token`` as a receiver gets it inside a message written in ``carrier``."""
    return MasterToken.parse(decode(encode(token.to_msl(), carrier)), MSL, clock=FixedClock(NOW))


def test_the_factory_issues_json_unless_asked() -> None:
    factory, ctx = TokenFactory(), _ctx()
    mt = factory.create_master_token(ctx, "alice", KE, KH)
    uit = factory.create_user_id_token(ctx, MslUser("bob"), mt)
    assert _format(mt.tokendata) is JSON and _format(uit.tokendata) is JSON


def test_the_factory_issues_in_the_format_asked_for() -> None:
    factory, ctx = TokenFactory(), _ctx()
    mt = factory.create_master_token(ctx, "alice", KE, KH, encoder_format=BIN)
    uit = factory.create_user_id_token(ctx, MslUser("bob"), mt, encoder_format=BIN)
    assert _format(mt.tokendata) is BIN and _format(uit.tokendata) is BIN
    # Every nested encoding is binary too: the session data's envelope and plaintext.
    sessiondata = decode(mt.tokendata).get_bytes("sessiondata")
    assert _format(sessiondata) is BIN and _format(MSL.decrypt(sessiondata)) is BIN
    assert _format(decode(uit.tokendata).get_bytes("userdata")) is BIN


@pytest.mark.parametrize("fmt", [JSON, BIN])
def test_a_key_exchange_issues_its_master_token_in_the_response_format(fmt: EncoderFormat) -> None:
    server, exchange, request = responder(), SymmetricWrappedExchange(psk_lookup()), SymmetricWrappedRequest("PSK")
    created = exchange.generate_response(server, request, entity_auth_data=StubEntityAuth(), encoder_format=fmt)
    issued = created.response.master_token
    renewed = exchange.generate_response(server, request, master_token=issued, encoder_format=fmt)
    assert [_format(t.tokendata) for t in (issued, renewed.response.master_token)] == [fmt, fmt]


def test_a_key_exchange_issues_json_when_not_told_the_format() -> None:
    server, exchange = responder(), SymmetricWrappedExchange(psk_lookup())
    result = exchange.generate_response(server, SymmetricWrappedRequest("PSK"), entity_auth_data=StubEntityAuth())
    assert _format(result.response.master_token.tokendata) is JSON


def test_a_json_only_factory_never_issues_binary() -> None:
    factory, ctx = TokenFactory(binary_tokens=False), _ctx()
    mt = factory.create_master_token(ctx, "alice", KE, KH, encoder_format=BIN)
    renewed = factory.renew_master_token(ctx, mt, KE, KH, encoder_format=BIN)
    uit = factory.create_user_id_token(ctx, MslUser("bob"), mt, encoder_format=BIN)
    assert {_format(t.tokendata) for t in (mt, renewed, uit)} == {JSON}


def test_binary_session_data_holds_what_a_reader_needs_and_no_more() -> None:
    mt = TokenFactory().create_master_token(_ctx(), "alice", KE, KH, encoder_format=BIN)
    session = MSL.decrypt(decode(mt.tokendata).get_bytes("sessiondata"))
    assert set(decode(session).to_dict()) == {"identity", "encryptionkey", "signaturekey"}
    parsed = _reparsed(mt, BIN)
    assert (parsed.identity, parsed.encryption_key, parsed.signature_key) == ("alice", KE, KH)
    assert (parsed.encryption_algorithm, parsed.signature_algorithm) == ("AES", "HmacSHA256")
    # The JSON form keeps every member the reference writes (tokens.md §1.2).
    json_mt = TokenFactory().create_master_token(_ctx(), "alice", KE, KH)
    json_session = decode(MSL.decrypt(decode(json_mt.tokendata).get_bytes("sessiondata"))).to_dict()
    assert {"hmackey", "signaturekey", "encryptionalgorithm", "signaturealgorithm"} <= set(json_session)


def test_binary_session_data_names_a_non_default_algorithm_and_issuer_data() -> None:
    mt = MasterToken.create(
        MSL,
        renewal_window_ms=NOW + 1000,
        expiration_ms=NOW + 2000,
        sequence_number=1,
        serial_number=2,
        identity="alice",
        encryption_key=KE,
        signature_key=KE,
        signature_algorithm="AESCmac",
        issuer_data={"region": "eu", "tier": 3},
        encoder_format=BIN,
    )
    session = decode(MSL.decrypt(decode(mt.tokendata).get_bytes("sessiondata"))).to_dict()
    assert session["signaturealgorithm"] == "AESCmac" and "hmackey" not in session
    parsed = _reparsed(mt, JSON)
    assert parsed.signature_algorithm == "AESCmac"
    assert parsed.issuer_data == {"region": "eu", "tier": 3}


@pytest.mark.parametrize("issued_in", [JSON, BIN])
@pytest.mark.parametrize("carrier", [JSON, BIN])
def test_a_token_travels_in_either_format_byte_for_byte(issued_in: EncoderFormat, carrier: EncoderFormat) -> None:
    factory, ctx = TokenFactory(), _ctx()
    mt = factory.create_master_token(ctx, "alice", KE, KH, encoder_format=issued_in)
    uit = factory.create_user_id_token(ctx, MslUser("bob"), mt, encoder_format=issued_in)
    parsed = _reparsed(mt, carrier)
    assert (parsed.tokendata, parsed.signature) == (mt.tokendata, mt.signature)
    assert parsed.verified and parsed.identity == "alice" and parsed.signature_key == KH
    uit_parsed = UserIdToken.parse(decode(encode(uit.to_msl(), carrier)), MSL, parsed, clock=FixedClock(NOW))
    assert uit_parsed.tokendata == uit.tokendata and uit_parsed.verified
    assert uit_parsed.user == MslUser("bob")


@pytest.mark.parametrize(("old", "new"), [(JSON, BIN), (BIN, JSON)])
def test_renewal_issues_in_the_response_format_whatever_the_old_token(old: EncoderFormat, new: EncoderFormat) -> None:
    factory, ctx = TokenFactory(), _ctx()
    mt = factory.create_master_token(ctx, "alice", KE, KH, issuer_data={"k": "v"}, encoder_format=old)
    renewed = factory.renew_master_token(ctx, _reparsed(mt, new), KE, KH, encoder_format=new)
    assert _format(renewed.tokendata) is new
    assert (renewed.serial_number, renewed.sequence_number) == (mt.serial_number, mt.sequence_number + 1)
    assert _reparsed(renewed, old).issuer_data == {"k": "v"}
    uit = factory.create_user_id_token(ctx, MslUser("bob"), mt, encoder_format=old)
    again = factory.renew_user_id_token(ctx, uit, renewed, encoder_format=new)
    assert _format(again.tokendata) is new and again.serial_number == uit.serial_number
    assert again.is_bound_to(renewed)


def test_a_binary_token_with_text_where_bytes_belong_is_a_token_parse_error() -> None:
    """The binary format types its binary fields (docs/binary-format.md §4): base64 text
    in place of the session data is the token's own parse error, not a crash."""
    mt = TokenFactory().create_master_token(_ctx(), "alice", KE, KH, encoder_format=BIN)
    fields = decode(mt.tokendata).to_dict()
    fields["sessiondata"] = "c2Vzc2lvbg=="
    tokendata = encode(fields, BIN)
    obj = MslObject({"tokendata": tokendata, "signature": MSL.sign(tokendata)})
    with pytest.raises(MslEncodingException) as info:
        MasterToken.parse(obj, MSL)
    assert info.value.error is MslError.MASTERTOKEN_TOKENDATA_PARSE_ERROR

"""Registry, repository, PSK lookup and key file configuration."""

from __future__ import annotations

import pytest

import vectorlib
from missile.crypto import SymmetricCryptoContext
from missile.encoding import MslObject
from missile.errors import MslEncodingException, MslError, MslKeyExchangeException
from missile.keyfile import KeyFile, PskKeySet
from missile.keyx import (
    KEY_REQUEST_SCHEMES,
    KEY_RESPONSE_SCHEMES,
    AsymmetricWrappedRequest,
    DiffieHellmanRequest,
    InMemoryWrapCryptoContextRepository,
    JweLadderRequest,
    JwkLadderRequest,
    StaticPskWrapKeyLookup,
    SymmetricWrappedRequest,
    WrapCryptoContextRepository,
    dh_parameters_from_keyfile,
    key_exchange_from_keyfile,
    key_request_data_from_keyfile,
    parse_key_request_data,
    psk_lookup_from_keyfile,
    wrap_repository_from_keyfile,
)

from . import requester

SCHEMES = ["ASYMMETRIC_WRAPPED", "SYMMETRIC_WRAPPED", "DIFFIE_HELLMAN", "JWE_LADDER", "JWK_LADDER"]


def test_import_registers_all_schemes() -> None:
    for scheme in SCHEMES:
        assert scheme in KEY_REQUEST_SCHEMES and scheme in KEY_RESPONSE_SCHEMES


def test_parse_unknown_scheme_or_factory() -> None:
    ctx = requester()
    with pytest.raises(MslKeyExchangeException) as info:
        parse_key_request_data(MslObject({"scheme": "AUTHENTICATED_DH", "keydata": {}}), ctx)
    assert info.value.error is MslError.UNIDENTIFIED_KEYX_SCHEME
    ctx = requester(keyx=[])
    with pytest.raises(MslKeyExchangeException) as info:
        parse_key_request_data(MslObject({"scheme": "JWE_LADDER", "keydata": {"mechanism": "PSK"}}), ctx)
    assert info.value.error is MslError.KEYX_FACTORY_NOT_FOUND


def test_repository_by_byte_content() -> None:
    repo = InMemoryWrapCryptoContextRepository()
    assert isinstance(repo, WrapCryptoContextRepository)
    context = SymmetricCryptoContext("w", wrap_key=bytes(16))
    repo.add_crypto_context(bytearray(b"abc"), context)  # type: ignore[arg-type]
    assert repo.get_crypto_context(b"abc") is context
    assert b"abc" in repo and len(repo) == 1
    repo.remove_crypto_context(b"abc")
    repo.remove_crypto_context(b"abc")  # absent: no error
    assert repo.get_crypto_context(b"abc") is None and len(repo) == 0


def test_psk_lookup_derives_kpw() -> None:
    """crypto.md §9.1 test vector when the key set has no wrap key."""
    lookup = StaticPskWrapKeyLookup.from_key_sets([PskKeySet("e", bytes(range(16)), bytes(range(32, 64)))])
    context = lookup.wrap_crypto_context("e")
    assert isinstance(context, SymmetricCryptoContext)
    assert context.wrap_key == bytes.fromhex("7b7b0dbfb638b34fa3ba594791955351")
    assert lookup.wrap_crypto_context("other") is None
    assert "7b7b" not in repr(lookup)
    # The vectors' client1 key set: given Kpw equals the derived one.
    keys = KeyFile.from_dict(vectorlib.load("12_b_psk_keyx_symmetric_wrapped_psk")["keys"])
    given = psk_lookup_from_keyfile(keys).wrap_crypto_context("client1")
    psk = keys.psk[0]
    derived = StaticPskWrapKeyLookup.from_key_sets([PskKeySet("client1", psk.encryption_key, psk.hmac_key)])
    assert isinstance(given, SymmetricCryptoContext)
    assert given.wrap_key == derived.wrap_crypto_context("client1").wrap_key  # type: ignore[union-attr]


def test_key_exchange_from_keyfile() -> None:
    keys = KeyFile.from_dict(vectorlib.load("14_b_psk_keyx_diffie_hellman")["keys"])
    assert [f.scheme for f in key_exchange_from_keyfile(keys)] == SCHEMES
    assert dh_parameters_from_keyfile(keys).parameter_spec("dh_default1") is not None


def test_key_request_data_from_keyfile() -> None:
    requests = key_request_data_from_keyfile(
        KeyFile.from_dict(
            {
                "identity": "c",
                "key_request_data": [
                    {"scheme": "SYMMETRIC_WRAPPED", "keyid": "PSK"},
                    {"scheme": "JWE_LADDER", "mechanism": "PSK"},
                    {"scheme": "JWK_LADDER", "mechanism": "WRAP", "wrapdata_b64": "AQIDBA=="},
                    {
                        "scheme": "DIFFIE_HELLMAN",
                        "parametersid": "x",
                        "p_hex": "17",
                        "g_hex": "5",
                        "public_hex": "0a",
                        "private_x_hex": "03",
                    },
                ],
            }
        )
    )
    assert [type(r) for r in requests] == [
        SymmetricWrappedRequest,
        JweLadderRequest,
        JwkLadderRequest,
        DiffieHellmanRequest,
    ]
    dh = requests[3]
    assert isinstance(dh, DiffieHellmanRequest) and (dh.public_key, dh.private_key) == (10, 3)
    rsa_keys = key_request_data_from_keyfile(
        KeyFile.from_dict(vectorlib.load("03_c_response_asymmetric_wrapped_rsa")["keys"])
    )
    assert isinstance(rsa_keys[0], AsymmetricWrappedRequest) and rsa_keys[0].private_key is not None

    with pytest.raises(MslKeyExchangeException) as info:
        key_request_data_from_keyfile(KeyFile.from_dict({"identity": "c", "key_request_data": [{"scheme": "NOPE"}]}))
    assert info.value.error is MslError.UNIDENTIFIED_KEYX_SCHEME
    with pytest.raises(MslEncodingException) as enc_info:
        key_request_data_from_keyfile(
            KeyFile.from_dict({"identity": "c", "key_request_data": [{"scheme": "SYMMETRIC_WRAPPED"}]})
        )
    assert enc_info.value.error is MslError.MSL_PARSE_ERROR


def test_wrap_repository_from_keyfile() -> None:
    keys = KeyFile.from_dict(vectorlib.load("21_c_response_jwe_ladder_wrap")["keys"])
    repo = wrap_repository_from_keyfile(keys)
    assert isinstance(repo, InMemoryWrapCryptoContextRepository) and len(repo) == 1
    with pytest.raises(MslKeyExchangeException):
        wrap_repository_from_keyfile(
            KeyFile.from_dict({"identity": "c", "wrap_keys": [{"scheme": "X", "wrapdata_b64": "", "wrapkey_b64": ""}]})
        )

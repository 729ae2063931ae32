"""Key exchange configuration from a key file (tests/vectors/README.md "Key file").

* :func:`key_exchange_from_keyfile`: the five built-in factories, with DH parameters
  from ``keys.dh_parameters`` and Kpw from ``keys.psk``.
* :func:`key_request_data_from_keyfile`: the requester's outstanding key request data,
  private parts included, from ``keys.key_request_data``.
* :func:`wrap_repository_from_keyfile`: ladder wrapping keys from ``keys.wrap_keys``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from missile.crypto.random import DEFAULT_RANDOM, RandomSource
from missile.encoding import b64decode
from missile.errors import MslEncodingException, MslError, MslKeyExchangeException
from missile.keyfile import KeyFile
from missile.keyx.asymmetric_wrapped import ASYMMETRIC_WRAPPED, AsymmetricWrappedExchange, AsymmetricWrappedRequest
from missile.keyx.base import KeyExchangeFactory, KeyRequestData
from missile.keyx.diffie_hellman import (
    DIFFIE_HELLMAN,
    DhParameterSpec,
    DiffieHellmanExchange,
    DiffieHellmanRequest,
    InMemoryDiffieHellmanParameters,
)
from missile.keyx.jwe_ladder import JWE_LADDER, JweLadderExchange, JweLadderRequest, jwe_ladder_key_context
from missile.keyx.jwk_ladder import JWK_LADDER, JwkLadderExchange, JwkLadderRequest, jwk_ladder_key_context
from missile.keyx.psk_lookup import psk_lookup_from_keyfile
from missile.keyx.repository import InMemoryWrapCryptoContextRepository, WrapCryptoContextRepository
from missile.keyx.symmetric_wrapped import SYMMETRIC_WRAPPED, SymmetricWrappedExchange, SymmetricWrappedRequest

__all__ = [
    "dh_parameters_from_keyfile",
    "key_exchange_from_keyfile",
    "key_request_data_from_keyfile",
    "wrap_repository_from_keyfile",
]


def _str(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise MslEncodingException(MslError.MSL_PARSE_ERROR, f"key file: '{key}' missing")
    return value


def _hex(entry: Mapping[str, Any], key: str) -> int:
    try:
        return int(_str(entry, key), 16)
    except ValueError:
        raise MslEncodingException(MslError.MSL_PARSE_ERROR, f"key file: '{key}' is not hex") from None


def _b64(entry: Mapping[str, Any], key: str) -> bytes:
    return b64decode(_str(entry, key))


def dh_parameters_from_keyfile(keys: KeyFile) -> InMemoryDiffieHellmanParameters:
    """The parameter sets of ``keys.dh_parameters`` by ID."""
    specs = {p.parameters_id: DhParameterSpec(p.p, p.g, p.private_bits) for p in keys.dh_parameters}
    return InMemoryDiffieHellmanParameters(specs)


def key_exchange_from_keyfile(
    keys: KeyFile, *, repository: WrapCryptoContextRepository | None = None
) -> list[KeyExchangeFactory]:
    """All five built-in factories (order of keyx.md §1: the default preference order).

    ``repository`` is the ladders' wrapping-key store; None makes them use
    ``ctx.wrap_repository``.
    """
    psk = psk_lookup_from_keyfile(keys)
    return [
        AsymmetricWrappedExchange(),
        SymmetricWrappedExchange(psk),
        DiffieHellmanExchange(dh_parameters_from_keyfile(keys)),
        JweLadderExchange(psk, repository),
        JwkLadderExchange(psk, repository),
    ]


def _request_from_entry(entry: Mapping[str, Any]) -> KeyRequestData:
    scheme = _str(entry, "scheme")
    if scheme == ASYMMETRIC_WRAPPED:
        return AsymmetricWrappedRequest.from_der(
            _str(entry, "keypairid"),
            _str(entry, "mechanism"),
            _b64(entry, "public_b64"),
            _b64(entry, "private_b64") if "private_b64" in entry else None,
        )
    if scheme == SYMMETRIC_WRAPPED:
        return SymmetricWrappedRequest(_str(entry, "keyid"))
    if scheme == DIFFIE_HELLMAN:
        spec = DhParameterSpec(_hex(entry, "p_hex"), _hex(entry, "g_hex"))
        private = _hex(entry, "private_x_hex") if "private_x_hex" in entry else None
        return DiffieHellmanRequest(_str(entry, "parametersid"), _hex(entry, "public_hex"), private, spec)
    if scheme in (JWE_LADDER, JWK_LADDER):
        cls = JweLadderRequest if scheme == JWE_LADDER else JwkLadderRequest
        wrapdata = _b64(entry, "wrapdata_b64") if entry.get("wrapdata_b64") else None
        return cls(_str(entry, "mechanism"), wrapdata)
    raise MslKeyExchangeException(MslError.UNIDENTIFIED_KEYX_SCHEME, repr(scheme))


def key_request_data_from_keyfile(keys: KeyFile) -> list[KeyRequestData]:
    """The requester's sent key request data, with private keys, from ``keys.key_request_data``."""
    return [_request_from_entry(entry) for entry in keys.key_request_data]


def wrap_repository_from_keyfile(
    keys: KeyFile,
    repository: WrapCryptoContextRepository | None = None,
    *,
    random: RandomSource = DEFAULT_RANDOM,
) -> WrapCryptoContextRepository:
    """Add the ladder wrapping keys of ``keys.wrap_keys`` (``{scheme, wrapdata_b64,
    wrapkey_b64}``, wrapkey = raw W) to ``repository`` (a new in-memory one by default)."""
    repo: WrapCryptoContextRepository = repository if repository is not None else InMemoryWrapCryptoContextRepository()
    for entry in keys.wrap_keys:
        scheme = _str(entry, "scheme")
        wrap_key = _b64(entry, "wrapkey_b64")
        if scheme == JWE_LADDER:
            repo.add_crypto_context(_b64(entry, "wrapdata_b64"), jwe_ladder_key_context(wrap_key, random))
        elif scheme == JWK_LADDER:
            repo.add_crypto_context(_b64(entry, "wrapdata_b64"), jwk_ladder_key_context(wrap_key))
        else:
            raise MslKeyExchangeException(MslError.UNIDENTIFIED_KEYX_SCHEME, repr(scheme))
    return repo

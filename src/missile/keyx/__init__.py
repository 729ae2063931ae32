"""Key exchange (keyx.md). Importing this package registers the five built-in schemes:
ASYMMETRIC_WRAPPED, SYMMETRIC_WRAPPED, DIFFIE_HELLMAN, JWE_LADDER and JWK_LADDER."""

from missile.keyx._ladder import LadderExchange, LadderMechanism, LadderRequest, LadderResponse
from missile.keyx.asymmetric_wrapped import (
    ASYMMETRIC_WRAPPED,
    AsymmetricWrappedExchange,
    AsymmetricWrappedMechanism,
    AsymmetricWrappedRequest,
    AsymmetricWrappedResponse,
)
from missile.keyx.base import (
    KEY_REQUEST_SCHEMES,
    KEY_RESPONSE_SCHEMES,
    KeyExchangeFactory,
    KeyExchangeResult,
    KeyRequestData,
    KeyResponseData,
    parse_key_request_data,
    parse_key_response_data,
)
from missile.keyx.config import (
    dh_parameters_from_keyfile,
    key_exchange_from_keyfile,
    key_request_data_from_keyfile,
    wrap_repository_from_keyfile,
)
from missile.keyx.diffie_hellman import (
    DIFFIE_HELLMAN,
    DhParameterSpec,
    DiffieHellmanExchange,
    DiffieHellmanParameters,
    DiffieHellmanRequest,
    DiffieHellmanResponse,
    InMemoryDiffieHellmanParameters,
)
from missile.keyx.jwe_ladder import (
    JWE_LADDER,
    JweLadderExchange,
    JweLadderRequest,
    JweLadderResponse,
    jwe_ladder_key_context,
)
from missile.keyx.jwk_ladder import (
    JWK_LADDER,
    JwkLadderExchange,
    JwkLadderRequest,
    JwkLadderResponse,
    jwk_ladder_key_context,
)
from missile.keyx.psk_lookup import PskWrapKeyLookup, StaticPskWrapKeyLookup, psk_lookup_from_keyfile
from missile.keyx.repository import InMemoryWrapCryptoContextRepository, WrapCryptoContextRepository
from missile.keyx.symmetric_wrapped import (
    SYMMETRIC_WRAPPED,
    SymmetricWrappedExchange,
    SymmetricWrappedKeyId,
    SymmetricWrappedRequest,
    SymmetricWrappedResponse,
)

__all__ = [
    "ASYMMETRIC_WRAPPED",
    "DIFFIE_HELLMAN",
    "JWE_LADDER",
    "JWK_LADDER",
    "KEY_REQUEST_SCHEMES",
    "KEY_RESPONSE_SCHEMES",
    "SYMMETRIC_WRAPPED",
    "AsymmetricWrappedExchange",
    "AsymmetricWrappedMechanism",
    "AsymmetricWrappedRequest",
    "AsymmetricWrappedResponse",
    "DhParameterSpec",
    "DiffieHellmanExchange",
    "DiffieHellmanParameters",
    "DiffieHellmanRequest",
    "DiffieHellmanResponse",
    "InMemoryDiffieHellmanParameters",
    "InMemoryWrapCryptoContextRepository",
    "JweLadderExchange",
    "JweLadderRequest",
    "JweLadderResponse",
    "JwkLadderExchange",
    "JwkLadderRequest",
    "JwkLadderResponse",
    "KeyExchangeFactory",
    "KeyExchangeResult",
    "KeyRequestData",
    "KeyResponseData",
    "LadderExchange",
    "LadderMechanism",
    "LadderRequest",
    "LadderResponse",
    "PskWrapKeyLookup",
    "StaticPskWrapKeyLookup",
    "SymmetricWrappedExchange",
    "SymmetricWrappedKeyId",
    "SymmetricWrappedRequest",
    "SymmetricWrappedResponse",
    "WrapCryptoContextRepository",
    "dh_parameters_from_keyfile",
    "jwe_ladder_key_context",
    "jwk_ladder_key_context",
    "key_exchange_from_keyfile",
    "key_request_data_from_keyfile",
    "parse_key_request_data",
    "parse_key_response_data",
    "psk_lookup_from_keyfile",
    "wrap_repository_from_keyfile",
]

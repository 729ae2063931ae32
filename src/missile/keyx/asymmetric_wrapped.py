"""ASYMMETRIC_WRAPPED key exchange (keyx.md §2).

The requester sends an ephemeral public key; the responder returns fresh session keys
wrapped to it. How each key is wrapped depends on the mechanism:

===========  ==============================  =========================================
mechanism    wrapped plaintext               wrapping
===========  ==============================  =========================================
RSA          raw key bytes                   RSA-OAEP (SHA-1), raw ciphertext
JWK_RSA      JWK with ``key_ops``            RSA-OAEP (SHA-1), raw ciphertext
JWK_RSAES    JWK with ``key_ops``            RSA PKCS#1 v1.5, raw ciphertext
JWE_RSA      JWK with ``use``                JWE compact, RSA-OAEP + A128GCM
JWEJS_RSA    JWK with ``use``                JWE JSON, RSA-OAEP + A128GCM
ECC          defined, unsupported (``UNSUPPORTED_KEYX_MECHANISM``)
===========  ==============================  =========================================
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Self

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from missile.crypto.algorithms import JweEncryption, JweFormat
from missile.crypto.asymmetric import RsaWrapMode, RsaWrappingCryptoContext
from missile.crypto.context import CryptoContext
from missile.crypto.jwe import JweCryptoContext, RsaOaepCekContext
from missile.crypto.jwk import JsonWebKey, session_encryption_jwk, session_hmac_jwk
from missile.errors import (
    MslCryptoException,
    MslEncodingException,
    MslError,
    MslException,
    MslKeyExchangeException,
)
from missile.keyx import _common
from missile.keyx.base import (
    KEY_REQUEST_SCHEMES,
    KEY_RESPONSE_SCHEMES,
    KeyRequestData,
    KeyResponseData,
)
from missile.tokens.master import MasterToken

if TYPE_CHECKING:
    from missile.context import MslContext
    from missile.encoding import MslObject

__all__ = [
    "ASYMMETRIC_WRAPPED",
    "AsymmetricWrappedMechanism",
    "AsymmetricWrappedRequest",
    "AsymmetricWrappedResponse",
    "AsymmetricWrappedExchange",
]

ASYMMETRIC_WRAPPED = "ASYMMETRIC_WRAPPED"

KEY_KEY_PAIR_ID = "keypairid"
KEY_MECHANISM = "mechanism"
KEY_PUBLIC_KEY = "publickey"
KEY_ENCRYPTION_KEY = "encryptionkey"
KEY_HMAC_KEY = "hmackey"

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class AsymmetricWrappedMechanism(StrEnum):
    """The ``mechanism`` values (keyx.md §2)."""

    RSA = "RSA"
    ECC = "ECC"
    JWE_RSA = "JWE_RSA"
    JWEJS_RSA = "JWEJS_RSA"
    JWK_RSA = "JWK_RSA"
    JWK_RSAES = "JWK_RSAES"

    @classmethod
    def from_wire(cls, value: str) -> AsymmetricWrappedMechanism:
        """Parse; unknown names raise ``UNIDENTIFIED_KEYX_MECHANISM``."""
        return _common.enum_from_wire(cls, value, MslError.UNIDENTIFIED_KEYX_MECHANISM)

    @property
    def is_rsa(self) -> bool:
        """True for the RSA-based (supported) mechanisms."""
        return self is not AsymmetricWrappedMechanism.ECC


def _load_public_key(der: bytes, mechanism: AsymmetricWrappedMechanism) -> PublicKey:
    """X.509 SubjectPublicKeyInfo DER of a key matching the mechanism, else ``INVALID_PUBLIC_KEY``."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise MslCryptoException(MslError.INVALID_PUBLIC_KEY, "public key is not valid X.509 DER", cause=exc) from exc
    wanted: type[Any] = ec.EllipticCurvePublicKey if mechanism is AsymmetricWrappedMechanism.ECC else rsa.RSAPublicKey
    if not isinstance(key, wanted):
        raise MslCryptoException(MslError.INVALID_PUBLIC_KEY, f"public key does not fit mechanism {mechanism}")
    return key  # type: ignore[no-any-return]


@KEY_REQUEST_SCHEMES.register
class AsymmetricWrappedRequest(KeyRequestData):
    """``{"keypairid", "mechanism", "publickey"}``; a requester's copy also holds the private key."""

    scheme: ClassVar[str] = ASYMMETRIC_WRAPPED

    def __init__(
        self,
        key_pair_id: str,
        mechanism: AsymmetricWrappedMechanism | str,
        public_key: PublicKey,
        private_key: PrivateKey | None = None,
    ) -> None:
        self.key_pair_id = key_pair_id
        self.mechanism = AsymmetricWrappedMechanism.from_wire(str(mechanism))
        self.public_key = public_key
        self.private_key = private_key

    @classmethod
    def generate(
        cls, mechanism: AsymmetricWrappedMechanism | str, key_pair_id: str, key_size: int = 2048
    ) -> AsymmetricWrappedRequest:
        """A fresh ephemeral RSA key pair (OpenSSL's generator) for a supported mechanism.

        JWK_RSA and JWK_RSAES need more than 1024 bits (keyx.md §2 note); 2048 is the default.
        """
        mech = AsymmetricWrappedMechanism.from_wire(str(mechanism))
        if not mech.is_rsa:
            raise MslKeyExchangeException(MslError.UNSUPPORTED_KEYX_MECHANISM, str(mech))
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        return cls(key_pair_id, mech, private_key.public_key(), private_key)

    @classmethod
    def from_der(
        cls,
        key_pair_id: str,
        mechanism: AsymmetricWrappedMechanism | str,
        public_der: bytes,
        private_der: bytes | None = None,
    ) -> AsymmetricWrappedRequest:
        """From X.509 SubjectPublicKeyInfo DER and optional unencrypted PKCS#8 DER."""
        mech = AsymmetricWrappedMechanism.from_wire(str(mechanism))
        public_key = _load_public_key(public_der, mech)
        private_key: PrivateKey | None = None
        if private_der is not None:
            try:
                loaded = serialization.load_der_private_key(private_der, password=None)
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                raise MslCryptoException(MslError.INVALID_PRIVATE_KEY, "invalid PKCS#8 DER", cause=exc) from exc
            if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                raise MslCryptoException(MslError.INVALID_PRIVATE_KEY, "unsupported private key type")
            private_key = loaded
        return cls(key_pair_id, mech, public_key, private_key)

    @property
    def public_der(self) -> bytes:
        """X.509 SubjectPublicKeyInfo DER of the public key (what goes on the wire)."""
        return self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def keydata(self) -> dict[str, Any]:
        return {KEY_KEY_PAIR_ID: self.key_pair_id, KEY_MECHANISM: str(self.mechanism), KEY_PUBLIC_KEY: self.public_der}

    @classmethod
    def parse(cls, keydata: MslObject, ctx: MslContext) -> Self:
        key_pair_id = keydata.get_string(KEY_KEY_PAIR_ID)
        mechanism = AsymmetricWrappedMechanism.from_wire(keydata.get_string(KEY_MECHANISM))
        public_key = _load_public_key(keydata.get_bytes(KEY_PUBLIC_KEY), mechanism)
        return cls(key_pair_id, mechanism, public_key)

    def __repr__(self) -> str:
        return (
            f"AsymmetricWrappedRequest(keypairid={self.key_pair_id!r}, mechanism={self.mechanism}, "
            f"private_key={'present' if self.private_key is not None else 'absent'})"
        )


@KEY_RESPONSE_SCHEMES.register
class AsymmetricWrappedResponse(KeyResponseData):
    """``{"keypairid", "encryptionkey", "hmackey"}`` with the wrapped session keys."""

    scheme: ClassVar[str] = ASYMMETRIC_WRAPPED

    def __init__(self, master_token: MasterToken, key_pair_id: str, encryption_key: bytes, hmac_key: bytes) -> None:
        self.master_token = master_token
        self.key_pair_id = key_pair_id
        self.encryption_key = encryption_key
        """The wrapped session encryption key."""
        self.hmac_key = hmac_key
        """The wrapped session HMAC key."""

    def keydata(self) -> dict[str, Any]:
        return {KEY_KEY_PAIR_ID: self.key_pair_id, KEY_ENCRYPTION_KEY: self.encryption_key, KEY_HMAC_KEY: self.hmac_key}

    @classmethod
    def parse(cls, keydata: MslObject, master_token: MasterToken, ctx: MslContext) -> Self:
        return cls(
            master_token,
            keydata.get_string(KEY_KEY_PAIR_ID),
            keydata.get_bytes(KEY_ENCRYPTION_KEY),
            keydata.get_bytes(KEY_HMAC_KEY),
        )

    def __repr__(self) -> str:
        return f"AsymmetricWrappedResponse(keypairid={self.key_pair_id!r}, master_token={self.master_token!r})"


def _wrap_context(
    ctx: MslContext,
    mechanism: AsymmetricWrappedMechanism,
    key_pair_id: str,
    public_key: PublicKey | None,
    private_key: PrivateKey | None,
) -> CryptoContext:
    """The mechanism's wrapping context (public key wraps, private key unwraps)."""
    if not mechanism.is_rsa:
        raise MslKeyExchangeException(MslError.UNSUPPORTED_KEYX_MECHANISM, str(mechanism))
    pub = public_key if isinstance(public_key, rsa.RSAPublicKey) else None
    priv = private_key if isinstance(private_key, rsa.RSAPrivateKey) else None
    if mechanism in (AsymmetricWrappedMechanism.RSA, AsymmetricWrappedMechanism.JWK_RSA):
        return RsaWrappingCryptoContext(key_pair_id, priv, pub, RsaWrapMode.WRAP_UNWRAP_OAEP)
    if mechanism is AsymmetricWrappedMechanism.JWK_RSAES:
        return RsaWrappingCryptoContext(key_pair_id, priv, pub, RsaWrapMode.WRAP_UNWRAP_PKCS1)
    fmt = JweFormat.JWE_CS if mechanism is AsymmetricWrappedMechanism.JWE_RSA else JweFormat.JWE_JS
    return JweCryptoContext(RsaOaepCekContext(priv, pub), JweEncryption.A128GCM, fmt, random=ctx.random)


def _jwk_key(data: bytes) -> bytes:
    """The ``k`` bytes of an unwrapped JWK; any parse failure is ``SESSION_KEY_CREATION_FAILURE``."""
    try:
        return JsonWebKey.parse(data).secret_key()
    except MslException as exc:
        if isinstance(exc, MslEncodingException | MslCryptoException):
            raise MslCryptoException(
                MslError.SESSION_KEY_CREATION_FAILURE, "unwrapped data is not a symmetric JWK", cause=exc
            ) from exc
        raise


class AsymmetricWrappedExchange(_common.BuiltinKeyExchange[AsymmetricWrappedRequest, AsymmetricWrappedResponse]):
    """Both sides of ASYMMETRIC_WRAPPED (keyx.md §2)."""

    scheme: ClassVar[str] = ASYMMETRIC_WRAPPED
    request_class = AsymmetricWrappedRequest
    response_class = AsymmetricWrappedResponse

    def _respond(
        self, ctx: MslContext, req: AsymmetricWrappedRequest, issuance: _common.Issuance
    ) -> AsymmetricWrappedResponse:
        if not ctx.allows_insecure(req.mechanism.value):
            raise MslKeyExchangeException(
                MslError.UNSUPPORTED_KEYX_MECHANISM, f"{req.mechanism.value} is not enabled"
            )
        wrapper = _wrap_context(ctx, req.mechanism, req.key_pair_id, req.public_key, None)
        encryption_key, hmac_key = _common.new_session_keys(ctx)
        if req.mechanism is AsymmetricWrappedMechanism.RSA:
            enc_plain, hmac_plain = encryption_key, hmac_key
        else:
            key_ops = req.mechanism in (AsymmetricWrappedMechanism.JWK_RSA, AsymmetricWrappedMechanism.JWK_RSAES)
            enc_plain = session_encryption_jwk(encryption_key, with_key_ops=key_ops).encode()
            hmac_plain = session_hmac_jwk(hmac_key, with_key_ops=key_ops).encode()
        wrapped_enc = wrapper.wrap(enc_plain)
        wrapped_hmac = wrapper.wrap(hmac_plain)
        new_token = issuance.issue(ctx, encryption_key, hmac_key)
        return AsymmetricWrappedResponse(new_token, req.key_pair_id, wrapped_enc, wrapped_hmac)

    def _recover(
        self,
        ctx: MslContext,
        req: AsymmetricWrappedRequest,
        resp: AsymmetricWrappedResponse,
        master_token: MasterToken | None,
    ) -> CryptoContext:
        if req.key_pair_id != resp.key_pair_id:
            raise _common.mismatch("keypairid")
        if req.private_key is None:
            raise MslKeyExchangeException(MslError.KEYX_PRIVATE_KEY_MISSING, req.key_pair_id)
        unwrapper = _wrap_context(ctx, req.mechanism, req.key_pair_id, None, req.private_key)
        enc_plain = unwrapper.unwrap(resp.encryption_key)
        hmac_plain = unwrapper.unwrap(resp.hmac_key)
        if req.mechanism is AsymmetricWrappedMechanism.RSA:
            encryption_key, hmac_key = enc_plain, hmac_plain
        else:
            encryption_key, hmac_key = _jwk_key(enc_plain), _jwk_key(hmac_plain)
        return _common.requester_session_context(ctx, resp, encryption_key, hmac_key)

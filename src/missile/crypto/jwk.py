"""JSON Web Keys in the reference's draft-08 format (crypto.md §7; interop.md B.15).

``kty`` is lowercase ``oct``/``rsa``, ``use`` may be ``wrap``, ``alg`` may be ``A128CBC``,
``extractable`` is always written, and key values are base64url without padding.
Structural problems (missing or mistyped members, bad JSON) raise
:class:`~missile.errors.MslEncodingException` (``MSL_PARSE_ERROR``); unknown names and
unusable key material raise :class:`~missile.errors.MslCryptoException`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa as _rsa

from missile.crypto.algorithms import JwkAlgorithm, JwkKeyOp, JwkType, JwkUsage
from missile.encoding import MslObject, b64url_decode, b64url_encode, decode, encode
from missile.errors import MslCryptoException, MslEncodingException, MslError

__all__ = [
    "JsonWebKey",
    "session_encryption_jwk",
    "session_hmac_jwk",
    "jwe_ladder_wrapping_jwk",
    "jwk_ladder_wrapping_jwk",
    "JWK_LADDER_WRAP_KEY_ID",
]

JWK_LADDER_WRAP_KEY_ID = "wrapKeyId"
"""The fixed ``kid`` of the JWK_LADDER wrapping key (keyx.md §6)."""

_KEY_TYPE = "kty"
_KEY_USAGE = "use"
_KEY_KEY_OPS = "key_ops"
_KEY_ALGORITHM = "alg"
_KEY_EXTRACTABLE = "extractable"
_KEY_KEY_ID = "kid"
_KEY_KEY = "k"
_KEY_MODULUS = "n"
_KEY_PUBLIC_EXPONENT = "e"
_KEY_PRIVATE_EXPONENT = "d"


def _int_to_b64url(value: int) -> str:
    """Big-endian unsigned, no leading zero bytes, base64url unpadded."""
    return b64url_encode(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _keydata(obj: MslObject, key: str) -> bytes:
    text = obj.get_string(key)
    try:
        data = b64url_decode(text)
    except MslEncodingException as e:
        raise MslCryptoException(MslError.INVALID_JWK_KEYDATA, f"JWK {key!r} is not base64url", cause=e) from e
    if not data:
        raise MslCryptoException(MslError.INVALID_JWK_KEYDATA, f"JWK {key!r} is empty")
    return data


@dataclass(frozen=True, slots=True)
class JsonWebKey:
    """An ``oct`` key (``key`` bytes) or an ``rsa`` key (``n`` with ``e`` and/or ``d``).

    ``key_ops`` is a set: the reference writes its members in hash order, so order never
    matters. Construct with :meth:`symmetric` / :meth:`rsa` or parse with :meth:`parse`.
    """

    kty: JwkType
    key: bytes | None = None
    n: int | None = None
    e: int | None = None
    d: int | None = None
    use: JwkUsage | None = None
    key_ops: frozenset[JwkKeyOp] | None = None
    alg: JwkAlgorithm | None = None
    extractable: bool = False
    kid: str | None = None

    def __repr__(self) -> str:  # never show key material
        return (
            f"JsonWebKey(kty={self.kty.value!r}, use={self.use}, key_ops={self.key_ops}, "
            f"alg={self.alg}, extractable={self.extractable}, kid={self.kid!r})"
        )

    # -- construction --------------------------------------------------------------------

    @classmethod
    def symmetric(
        cls,
        key: bytes,
        *,
        use: JwkUsage | None = None,
        key_ops: Iterable[JwkKeyOp] | None = None,
        alg: JwkAlgorithm | None = None,
        extractable: bool = False,
        kid: str | None = None,
    ) -> JsonWebKey:
        """An ``oct`` JWK holding raw key bytes."""
        if not key:
            raise MslCryptoException(MslError.INVALID_JWK_KEYDATA, "symmetric key is empty")
        if alg is not None and not alg.is_symmetric:
            raise ValueError(f"{alg} is not a symmetric key algorithm")
        return cls(
            JwkType.OCT,
            key=bytes(key),
            use=use,
            key_ops=frozenset(key_ops) if key_ops is not None else None,
            alg=alg,
            extractable=extractable,
            kid=kid,
        )

    @classmethod
    def rsa(
        cls,
        public_key: _rsa.RSAPublicKey | None = None,
        private_key: _rsa.RSAPrivateKey | None = None,
        *,
        use: JwkUsage | None = None,
        key_ops: Iterable[JwkKeyOp] | None = None,
        alg: JwkAlgorithm | None = None,
        extractable: bool = False,
        kid: str | None = None,
    ) -> JsonWebKey:
        """An ``rsa`` JWK from a public key (``n``, ``e``) and/or private key (``n``, ``d``)."""
        if public_key is None and private_key is None:
            raise ValueError("at least one of the public or private key is required")
        if alg is not None and alg.is_symmetric:
            raise ValueError(f"{alg} is not an RSA algorithm")
        n = e = d = None
        if public_key is not None:
            pub = public_key.public_numbers()
            n, e = pub.n, pub.e
        if private_key is not None:
            priv = private_key.private_numbers()
            n, d = priv.public_numbers.n, priv.d
        return cls(
            JwkType.RSA,
            n=n,
            e=e,
            d=d,
            use=use,
            key_ops=frozenset(key_ops) if key_ops is not None else None,
            alg=alg,
            extractable=extractable,
            kid=kid,
        )

    # -- parsing -------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes | MslObject) -> JsonWebKey:
        """Parse JWK JSON bytes (leading padding spaces are fine) or a decoded object."""
        obj = data if isinstance(data, MslObject) else decode(data)
        type_name = obj.get_string(_KEY_TYPE)
        usage_name = obj.opt_string(_KEY_USAGE)
        ops_array = obj.opt_array(_KEY_KEY_OPS)
        op_names = ops_array.strings() if ops_array is not None else None
        algo_name = obj.opt_string(_KEY_ALGORITHM)
        extractable = obj.opt_bool(_KEY_EXTRACTABLE, False)
        kid = obj.opt_string(_KEY_KEY_ID)

        kty = JwkType.from_wire(type_name)
        use = JwkUsage.from_wire(usage_name) if usage_name is not None else None
        key_ops = frozenset(JwkKeyOp.from_wire(op) for op in op_names) if op_names is not None else None
        alg = JwkAlgorithm.from_wire(algo_name) if algo_name is not None else None
        common: dict[str, Any] = {
            "use": use,
            "key_ops": key_ops,
            "alg": alg,
            "extractable": extractable,
            "kid": kid,
        }

        if kty is JwkType.OCT:
            return cls(kty, key=_keydata(obj, _KEY_KEY), **common)
        n = int.from_bytes(_keydata(obj, _KEY_MODULUS), "big")
        e = int.from_bytes(_keydata(obj, _KEY_PUBLIC_EXPONENT), "big") if _KEY_PUBLIC_EXPONENT in obj else None
        d = int.from_bytes(_keydata(obj, _KEY_PRIVATE_EXPONENT), "big") if _KEY_PRIVATE_EXPONENT in obj else None
        if e is None and d is None:
            raise MslEncodingException(MslError.MSL_PARSE_ERROR, "rsa JWK has no public or private exponent")
        return cls(kty, n=n, e=e, d=d, **common)

    # -- encoding ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JWK as a JSON-ready dict (every value already a string/bool/list)."""
        out: dict[str, Any] = {_KEY_TYPE: self.kty.value}
        if self.use is not None:
            out[_KEY_USAGE] = self.use.value
        if self.key_ops is not None:
            out[_KEY_KEY_OPS] = [op.value for op in JwkKeyOp if op in self.key_ops]
        if self.alg is not None:
            out[_KEY_ALGORITHM] = self.alg.value
        out[_KEY_EXTRACTABLE] = self.extractable
        if self.kid is not None:
            out[_KEY_KEY_ID] = self.kid
        if self.kty is JwkType.OCT:
            if not self.key:
                raise MslCryptoException(MslError.INVALID_JWK_KEYDATA, "symmetric key is empty")
            out[_KEY_KEY] = b64url_encode(self.key)
        else:
            if self.n is None:
                raise MslCryptoException(MslError.INVALID_JWK_KEYDATA, "rsa JWK without modulus")
            out[_KEY_MODULUS] = _int_to_b64url(self.n)
            if self.e is not None:
                out[_KEY_PUBLIC_EXPONENT] = _int_to_b64url(self.e)
            if self.d is not None:
                out[_KEY_PRIVATE_EXPONENT] = _int_to_b64url(self.d)
        return out

    def encode(self) -> bytes:
        """Compact JSON bytes of the JWK."""
        return encode(self.to_dict())

    # -- key access ----------------------------------------------------------------------

    def secret_key(self) -> bytes:
        """The raw ``oct`` key bytes (``INVALID_SYMMETRIC_KEY`` for other key types)."""
        if self.kty is not JwkType.OCT or not self.key:
            raise MslCryptoException(MslError.INVALID_SYMMETRIC_KEY, "not a symmetric JWK")
        return self.key

    def rsa_public_key(self) -> _rsa.RSAPublicKey:
        """The RSA public key (``n``, ``e``)."""
        if self.kty is not JwkType.RSA or self.n is None or self.e is None:
            raise MslCryptoException(MslError.INVALID_PUBLIC_KEY, "JWK has no RSA public key")
        try:
            return _rsa.RSAPublicNumbers(self.e, self.n).public_key()
        except ValueError as exc:
            raise MslCryptoException(MslError.INVALID_JWK_KEYDATA, "invalid RSA public key", cause=exc) from exc

    def rsa_private_key(self) -> _rsa.RSAPrivateKey:
        """The RSA private key; needs ``n``, ``e`` and ``d`` (the CRT factors are recovered)."""
        if self.kty is not JwkType.RSA or self.n is None or self.d is None:
            raise MslCryptoException(MslError.INVALID_PRIVATE_KEY, "JWK has no RSA private key")
        if self.e is None:
            raise MslCryptoException(MslError.UNSUPPORTED_KEY, "RSA private key without public exponent")
        try:
            p, q = _rsa.rsa_recover_prime_factors(self.n, self.e, self.d)
            numbers = _rsa.RSAPrivateNumbers(
                p,
                q,
                self.d,
                _rsa.rsa_crt_dmp1(self.d, p),
                _rsa.rsa_crt_dmq1(self.d, q),
                _rsa.rsa_crt_iqmp(p, q),
                _rsa.RSAPublicNumbers(self.e, self.n),
            )
            return numbers.private_key()
        except ValueError as exc:
            raise MslCryptoException(MslError.INVALID_JWK_KEYDATA, "invalid RSA private key", cause=exc) from exc


# -- the JWKs the key exchanges produce (crypto.md §7) ------------------------------------


def session_encryption_jwk(key: bytes, *, with_key_ops: bool = False) -> JsonWebKey:
    """Session encryption key JWK: ``use:"enc"`` (JWE mechanisms) or ``key_ops`` encrypt/decrypt
    (JWK mechanisms); ``alg:"A128CBC"``, not extractable."""
    if with_key_ops:
        return JsonWebKey.symmetric(key, key_ops=(JwkKeyOp.ENCRYPT, JwkKeyOp.DECRYPT), alg=JwkAlgorithm.A128CBC)
    return JsonWebKey.symmetric(key, use=JwkUsage.ENC, alg=JwkAlgorithm.A128CBC)


def session_hmac_jwk(key: bytes, *, with_key_ops: bool = False) -> JsonWebKey:
    """Session HMAC key JWK: ``use:"sig"`` or ``key_ops`` sign/verify; ``alg:"HS256"``."""
    if with_key_ops:
        return JsonWebKey.symmetric(key, key_ops=(JwkKeyOp.SIGN, JwkKeyOp.VERIFY), alg=JwkAlgorithm.HS256)
    return JsonWebKey.symmetric(key, use=JwkUsage.SIG, alg=JwkAlgorithm.HS256)


def jwe_ladder_wrapping_jwk(key: bytes, kid: str) -> JsonWebKey:
    """JWE_LADDER wrapping key: ``use:"wrap"``, ``alg:"A128KW"``, the given ``kid``
    (decimal of a random signed 64-bit integer, keyx.md §5)."""
    return JsonWebKey.symmetric(key, use=JwkUsage.WRAP, alg=JwkAlgorithm.A128KW, kid=kid)


def jwk_ladder_wrapping_jwk(key: bytes) -> JsonWebKey:
    """JWK_LADDER wrapping key: ``key_ops`` wrapKey/unwrapKey, ``alg:"A128KW"``, ``kid:"wrapKeyId"``."""
    return JsonWebKey.symmetric(
        key,
        key_ops=(JwkKeyOp.WRAP_KEY, JwkKeyOp.UNWRAP_KEY),
        alg=JwkAlgorithm.A128KW,
        kid=JWK_LADDER_WRAP_KEY_ID,
    )

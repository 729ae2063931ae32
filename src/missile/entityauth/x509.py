"""X509: an X.509 certificate issued by a trusted CA (entityauth.md §2.5)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding

from missile.crypto.asymmetric import RsaCryptoContext, RsaMode
from missile.encoding import MslObject, b64decode, b64encode
from missile.entityauth.base import ENTITY_AUTH_SCHEMES, EntityAuthData, EntityAuthFactory, checked, expect_data
from missile.entityauth.stores import X509Store, rfc2253_name
from missile.errors import MslCryptoException, MslEncodingException, MslEntityAuthException, MslError, MslException

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["X509EntityAuthData", "X509EntityAuthFactory"]

KEY_X509_CERT = "x509certificate"


@ENTITY_AUTH_SCHEMES.register
class X509EntityAuthData(EntityAuthData):
    """``{"x509certificate": base64 DER}``; the identity is the subject DN (RFC 2253).

    Equality is by identity, as in the reference.
    """

    scheme: ClassVar[str] = "X509"
    encrypts: ClassVar[bool] = False
    protects_integrity: ClassVar[bool] = True

    def __init__(self, certificate: x509.Certificate) -> None:
        self.certificate = certificate
        self._identity = rfc2253_name(certificate.subject)

    @property
    def identity(self) -> str:
        return self._identity

    def authdata(self) -> Mapping[str, Any]:
        return {KEY_X509_CERT: b64encode(self.certificate.public_bytes(Encoding.DER))}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext) -> Self:
        text = authdata.get_string(KEY_X509_CERT)
        try:
            der = b64decode(text)
        except MslEncodingException as e:
            raise MslCryptoException(MslError.X509CERT_INVALID, "certificate is not base64", cause=e) from e
        try:
            certificate = x509.load_der_x509_certificate(der)
            # cryptography decodes some fields only when first read; read what the trust
            # check and the factory use now, so that a malformed one is a parse error
            # (as with Java's eager certificate parsing), not a stray ValueError later.
            # A well-formed key of an unsupported type is the factory's to refuse.
            _ = (certificate.issuer, certificate.not_valid_before_utc, certificate.not_valid_after_utc)
            with contextlib.suppress(UnsupportedAlgorithm):
                certificate.public_key()
            return cls(certificate)
        except (ValueError, TypeError, x509.InvalidVersion) as e:
            # cryptography's parse failures: malformed DER or values (ValueError), an
            # attribute value of a type its OID may not have (TypeError), a bad version.
            raise MslCryptoException(MslError.X509CERT_PARSE_ERROR, "certificate DER", cause=e) from e

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X509EntityAuthData) and other.identity == self.identity

    def __hash__(self) -> int:
        return hash((self.scheme, self._identity))

    def __repr__(self) -> str:
        return f"X509EntityAuthData(identity={self._identity!r})"


class X509EntityAuthFactory(EntityAuthFactory):
    """Checks on the subject DN, trust-store acceptance, then an RSA SIGN_VERIFY context.

    Only RSA certificates are usable (the reference always builds an RSA context);
    another key type is INVALID_PUBLIC_KEY. The store's private key for the identity,
    if any, makes the context able to sign (the local entity).
    """

    scheme: ClassVar[str] = X509EntityAuthData.scheme

    def __init__(self, store: X509Store) -> None:
        self.store = store

    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> RsaCryptoContext:
        x509_data = expect_data(data, X509EntityAuthData)
        identity = x509_data.identity
        checked(ctx, x509_data, identity, self.scheme)
        try:
            if not self.store.is_trusted(x509_data.certificate, ctx.clock()):
                raise MslEntityAuthException(MslError.X509CERT_VERIFICATION_FAILED, identity)
            try:
                public_key = x509_data.certificate.public_key()
            except (ValueError, UnsupportedAlgorithm) as e:
                raise MslCryptoException(MslError.INVALID_PUBLIC_KEY, "unsupported certificate key", cause=e) from e
            return RsaCryptoContext(
                identity,
                self.store.get_private_key(identity),
                public_key,  # type: ignore[arg-type]
                RsaMode.SIGN_VERIFY,
            )
        except MslException as e:
            e.set_entity_auth_data(x509_data)
            raise

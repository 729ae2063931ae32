"""Key stores behind the entity authentication factories (entityauth.md §2.3-§2.9).

Each store is a small :class:`~typing.Protocol` the factories consult, plus an
in-memory implementation. Deployments back them with their own databases or HSMs.

* :class:`KeySetStore` — PSK key sets (Kpe, Kph, Kpw) by identity (§2.3, §2.4).
* :class:`RsaStore` / :class:`EccStore` — public keys by key pair ID and the local
  entity's private keys (§2.6, §2.7).
* :class:`X509Store` — the trust store of CA certificates (§2.5).
* :class:`IdentityProvisioningService` — new identities for PROVISIONED (§2.9).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key, load_der_public_key

from missile.clock import system_clock
from missile.crypto.derivation import derive_wrapping_key
from missile.crypto.random import DEFAULT_RANDOM, RandomSource
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.errors import MslCryptoException, MslEntityAuthException, MslError

__all__ = [
    "EccStore",
    "IdentityProvisioningService",
    "InMemoryEccStore",
    "InMemoryIdentityProvisioningService",
    "InMemoryKeySetStore",
    "InMemoryRsaStore",
    "InMemoryX509Store",
    "KeySet",
    "KeySetStore",
    "RsaStore",
    "X509Store",
    "rfc2253_name",
]


# -- PSK key sets ---------------------------------------------------------------------


@dataclass(frozen=True)
class KeySet:
    """A pre-shared key set: Kpe (AES), Kph (HMAC-SHA256) and Kpw (AES key wrap).

    When ``wrap_key`` is not given it is derived from Kpe and Kph (crypto.md §9.1).
    Key material never appears in the repr.
    """

    encryption_key: bytes = field(repr=False)
    hmac_key: bytes = field(repr=False)
    wrap_key: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not self.wrap_key:
            object.__setattr__(self, "wrap_key", derive_wrapping_key(self.encryption_key, self.hmac_key))


class KeySetStore(Protocol):
    """PSK key sets by entity identity (the reference's KeySetStore)."""

    def get_keys(self, identity: str) -> KeySet | None:
        """The key set of ``identity``, or None when unknown."""
        ...


class InMemoryKeySetStore:
    """A :class:`KeySetStore` held in a dictionary."""

    def __init__(self) -> None:
        self._keys: dict[str, KeySet] = {}
        self._lock = threading.Lock()

    def add(self, identity: str, encryption_key: bytes, hmac_key: bytes, wrap_key: bytes | None = None) -> KeySet:
        """Store the keys of ``identity``; Kpw is derived when ``wrap_key`` is None."""
        keys = KeySet(encryption_key, hmac_key, wrap_key or b"")
        with self._lock:
            self._keys[identity] = keys
        return keys

    def remove(self, identity: str) -> None:
        """Forget the keys of ``identity``."""
        with self._lock:
            self._keys.pop(identity, None)

    def get_keys(self, identity: str) -> KeySet | None:
        """The key set of ``identity``, or None when unknown."""
        with self._lock:
            return self._keys.get(identity)

    def wrap_crypto_context(self, identity: str) -> SymmetricCryptoContext | None:
        """The Kpw wrapping context of ``identity`` (None when unknown), without checks.

        Satisfies :class:`missile.keyx.psk_lookup.PskWrapKeyLookup`. The authenticated
        variant (revocation, permission, ENTITY_NOT_FOUND) is
        :meth:`missile.entityauth.psk.PskEntityAuthFactory.wrap_crypto_context`.
        """
        keys = self.get_keys(identity)
        if keys is None:
            return None
        return SymmetricCryptoContext(identity, wrap_key=keys.wrap_key)


# -- RSA and ECC key pairs --------------------------------------------------------------


_PublicKeyT_co = TypeVar("_PublicKeyT_co", covariant=True)
_PrivateKeyT_co = TypeVar("_PrivateKeyT_co", covariant=True)
_PublicKeyT = TypeVar("_PublicKeyT")
_PrivateKeyT = TypeVar("_PrivateKeyT")


class KeyPairStore(Protocol[_PublicKeyT_co, _PrivateKeyT_co]):
    """Keys by key pair ID (``pubkeyid``): peers' public keys, the local private key."""

    def get_public_key(self, key_pair_id: str) -> _PublicKeyT_co | None:
        """The public key of ``key_pair_id``, or None."""
        ...

    def get_private_key(self, key_pair_id: str) -> _PrivateKeyT_co | None:
        """The private key of ``key_pair_id`` (only the local entity's), or None."""
        ...


class RsaStore(KeyPairStore[rsa.RSAPublicKey, rsa.RSAPrivateKey], Protocol):
    """RSA keys by key pair ID (``pubkeyid``): peers' public keys, the local private key."""


class EccStore(KeyPairStore[ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey], Protocol):
    """ECC keys by key pair ID (``pubkeyid``): peers' public keys, the local private key."""


class _InMemoryKeyPairStore(Generic[_PublicKeyT, _PrivateKeyT]):
    """A :class:`KeyPairStore` in memory; a private key implies its public key."""

    _public_type: type[_PublicKeyT]
    _private_type: type[_PrivateKeyT]

    def __init__(self) -> None:
        self._public: dict[str, _PublicKeyT] = {}
        self._private: dict[str, _PrivateKeyT] = {}
        self._lock = threading.Lock()

    def _add(self, key_pair_id: str, public_key: object | None, private_key: object | None) -> None:
        if public_key is None and private_key is None:
            raise ValueError("a public or a private key is required")
        if private_key is not None and not isinstance(private_key, self._private_type):
            raise MslCryptoException(MslError.INVALID_PRIVATE_KEY, f"key pair {key_pair_id!r}")
        if public_key is None:
            public_key = getattr(private_key, "public_key")()  # noqa: B009 - either key type
        if not isinstance(public_key, self._public_type):
            raise MslCryptoException(MslError.INVALID_PUBLIC_KEY, f"key pair {key_pair_id!r}")
        with self._lock:
            self._public[key_pair_id] = public_key
            if private_key is not None:
                self._private[key_pair_id] = private_key
            else:
                self._private.pop(key_pair_id, None)

    def add(
        self, key_pair_id: str, public_key: _PublicKeyT | None = None, private_key: _PrivateKeyT | None = None
    ) -> None:
        """Add a key pair (public only for peers, private too for the local entity)."""
        self._add(key_pair_id, public_key, private_key)

    def add_der(self, key_pair_id: str, public_der: bytes | None, private_der: bytes | None = None) -> None:
        """Add keys from SubjectPublicKeyInfo DER and/or PKCS#8 DER."""
        try:
            public = load_der_public_key(public_der) if public_der is not None else None
        except ValueError as e:
            raise MslCryptoException(MslError.INVALID_PUBLIC_KEY, f"key pair {key_pair_id!r}", cause=e) from e
        try:
            private = load_der_private_key(private_der, None) if private_der is not None else None
        except (ValueError, TypeError) as e:
            raise MslCryptoException(MslError.INVALID_PRIVATE_KEY, f"key pair {key_pair_id!r}", cause=e) from e
        self._add(key_pair_id, public, private)

    def remove(self, key_pair_id: str) -> None:
        """Forget a key pair."""
        with self._lock:
            self._public.pop(key_pair_id, None)
            self._private.pop(key_pair_id, None)

    def get_public_key(self, key_pair_id: str) -> _PublicKeyT | None:
        with self._lock:
            return self._public.get(key_pair_id)

    def get_private_key(self, key_pair_id: str) -> _PrivateKeyT | None:
        with self._lock:
            return self._private.get(key_pair_id)


class InMemoryRsaStore(_InMemoryKeyPairStore[rsa.RSAPublicKey, rsa.RSAPrivateKey]):
    """An :class:`RsaStore` in memory; a private key implies its public key."""

    _public_type = rsa.RSAPublicKey
    _private_type = rsa.RSAPrivateKey


class InMemoryEccStore(_InMemoryKeyPairStore[ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey]):
    """An :class:`EccStore` in memory; a private key implies its public key."""

    _public_type = ec.EllipticCurvePublicKey
    _private_type = ec.EllipticCurvePrivateKey


# -- X.509 ----------------------------------------------------------------------------

# The attribute keywords Java's X500Principal.getName() (RFC 2253) emits; any other
# attribute is written as a dotted OID with a hex BER value (RFC 2253 §2.4).
_RFC2253_KEYWORDS = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
_BMP_STRING = 30
_UNIVERSAL_STRING = 28


def _escape_rfc2253(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (ch == "#" and i == 0) or (ch == " " and (i == 0 or i == len(value) - 1)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _ber_hex(attr: x509.NameAttribute[str | bytes]) -> str:
    tag = int(getattr(getattr(attr, "_type", None), "value", 12))
    value = attr.value
    if isinstance(value, bytes):
        body = value
    elif tag == _BMP_STRING:
        body = value.encode("utf-16-be")
    elif tag == _UNIVERSAL_STRING:
        body = value.encode("utf-32-be")
    else:
        body = value.encode("utf-8")
    n = len(body)
    length = (
        bytes([n])
        if n < 0x80
        else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    )
    return "#" + (bytes([tag]) + length + body).hex()


def rfc2253_name(name: x509.Name) -> str:
    """The RFC 2253 string of a distinguished name, as Java ``X500Principal.getName()``.

    RDNs are written last-to-first (the reverse of the DER sequence); the RFC 2253
    keywords are used where defined, other attributes as ``OID=#hexBER``.
    """
    rdns = []
    for rdn in reversed(name.rdns):
        avas = []
        for attr in rdn:
            keyword = _RFC2253_KEYWORDS.get(attr.oid.dotted_string)
            if keyword is not None and isinstance(attr.value, str):
                avas.append(f"{keyword}={_escape_rfc2253(attr.value)}")
            else:
                avas.append(f"{attr.oid.dotted_string}={_ber_hex(attr)}")
        rdns.append("+".join(avas))
    return ",".join(rdns)


def _check_validity(cert: x509.Certificate, now_ms: int) -> None:
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    if now < cert.not_valid_before_utc:
        raise MslEntityAuthException(MslError.X509CERT_NOT_YET_VALID, rfc2253_name(cert.subject))
    if now > cert.not_valid_after_utc:
        raise MslEntityAuthException(MslError.X509CERT_EXPIRED, rfc2253_name(cert.subject))


_UNLIMITED = 2**31 - 1


def _path_length(cert: x509.Certificate) -> int:
    """Java ``getBasicConstraints()``: -1 when not a CA, the path length, or unlimited."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return -1
    if not bc.ca:
        return -1
    return _UNLIMITED if bc.path_length is None else bc.path_length


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


class X509Store(Protocol):
    """The X.509 trust store of the X509 scheme (entityauth.md §2.5)."""

    def is_trusted(self, cert: x509.Certificate, now_ms: int) -> bool:
        """True when ``cert`` is valid at ``now_ms`` and issued by a trusted certificate.

        Raises X509CERT_NOT_YET_VALID, X509CERT_EXPIRED or X509CERT_VERIFICATION_FAILED.
        """
        ...

    def get_private_key(self, identity: str) -> rsa.RSAPrivateKey | None:
        """The local entity's private key for its certificate identity, or None."""
        ...


class InMemoryX509Store:
    """Trusted CA certificates by subject, validated as they are added.

    :meth:`add_trusted` follows the reference X509Store: the certificate must be
    currently valid and a CA; a self-signed one must verify with its own key, any
    other must be issued by a certificate already in the store and respect the
    issuers' path lengths (the reference's "lazy" rule: a subordinate's path length
    must be strictly smaller than its issuer's, an absent one counting as unlimited).
    :meth:`is_trusted` checks the validity period and one issuer level only.
    """

    def __init__(self) -> None:
        self._by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        self._private: dict[str, rsa.RSAPrivateKey] = {}
        self._lock = threading.Lock()

    def _issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        with self._lock:
            candidates = list(self._by_subject.get(cert.issuer, ()))
        return next((c for c in candidates if _issued_by(cert, c)), None)

    def _permitted_by_issuers(self, cert: x509.Certificate) -> bool:
        chain: list[x509.Certificate] = []
        current = cert
        while True:
            issuer = self._issuer_of(current)
            if issuer is None or issuer in chain:
                return False
            chain.insert(0, issuer)
            current = issuer
            if current.subject == current.issuer:
                break
        expected = -1
        for issuer in chain:
            length = _path_length(issuer)
            if length == -1:
                if expected == -1:
                    return False
                expected -= 1
            elif expected == -1 or length < expected:
                expected = length
            else:
                return False
            if expected == 0:
                return False
        own = _path_length(cert)
        return not (own != -1 and own >= expected)

    def add_trusted(self, cert: x509.Certificate, now_ms: int | None = None) -> None:
        """Trust a CA certificate (root first, then subordinates; see the class doc).

        Raises X509CERT_EXPIRED / X509CERT_NOT_YET_VALID, or
        X509CERT_VERIFICATION_FAILED when it is not an acceptable CA certificate.
        """
        _check_validity(cert, system_clock() if now_ms is None else now_ms)
        subject = rfc2253_name(cert.subject)
        if _path_length(cert) < 0:
            raise MslEntityAuthException(MslError.X509CERT_VERIFICATION_FAILED, f"not a CA certificate: {subject}")
        if cert.subject == cert.issuer:
            if not _issued_by(cert, cert):
                raise MslEntityAuthException(MslError.X509CERT_VERIFICATION_FAILED, f"bad self-signature: {subject}")
        else:
            if self._issuer_of(cert) is None:
                raise MslEntityAuthException(
                    MslError.X509CERT_VERIFICATION_FAILED, f"not issued by a trusted certificate: {subject}"
                )
            if not self._permitted_by_issuers(cert):
                raise MslEntityAuthException(
                    MslError.X509CERT_VERIFICATION_FAILED, f"too far from its issuing CA: {subject}"
                )
        with self._lock:
            certs = self._by_subject.setdefault(cert.subject, [])
            if cert not in certs:
                certs.append(cert)

    def add_trusted_chain(self, chain: list[x509.Certificate], now_ms: int | None = None) -> None:
        """Trust a chain ordered root first; the root must be self-signed."""
        if not chain:
            return
        if chain[0].subject != chain[0].issuer:
            raise MslEntityAuthException(MslError.X509CERT_VERIFICATION_FAILED, "first certificate is not self-signed")
        for cert in chain:
            self.add_trusted(cert, now_ms)

    def set_private_key(self, cert: x509.Certificate, private_key: rsa.RSAPrivateKey) -> None:
        """Hold the local entity's private key for its own certificate."""
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise MslCryptoException(MslError.INVALID_PRIVATE_KEY, "not an RSA private key")
        with self._lock:
            self._private[rfc2253_name(cert.subject)] = private_key

    def get_private_key(self, identity: str) -> rsa.RSAPrivateKey | None:
        """The private key of ``key_pair_id`` (only the local entity's), or None."""
        with self._lock:
            return self._private.get(identity)

    def is_trusted(self, cert: x509.Certificate, now_ms: int) -> bool:
        """True when ``cert`` is valid at ``now_ms`` and issued by a trusted certificate."""
        _check_validity(cert, now_ms)
        if self._issuer_of(cert) is None:
            raise MslEntityAuthException(MslError.X509CERT_VERIFICATION_FAILED, rfc2253_name(cert.subject))
        return True


# -- identity provisioning -------------------------------------------------------------


class IdentityProvisioningService(Protocol):
    """Hands out new unique entity identities (PROVISIONED, entityauth.md §2.9)."""

    def next_identity(self) -> str:
        """A new unique identity."""
        ...


class InMemoryIdentityProvisioningService:
    """Identities ``<prefix><counter>-<16 random hex digits>``.

    The counter makes identities unique within this process; the random suffix keeps
    them unique across restarts and instances.
    """

    def __init__(self, prefix: str = "provisioned-", random: RandomSource = DEFAULT_RANDOM) -> None:
        self._prefix = prefix
        self._random = random
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def next_identity(self) -> str:
        """A new unique identity."""
        with self._lock:
            n = next(self._counter)
        return f"{self._prefix}{n}-{self._random.random_bytes(8).hex()}"

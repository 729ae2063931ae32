"""Master tokens (tokens.md §1).

A master token names an entity and carries its session keys, encrypted and signed with
the issuer's MSL keys. A holder that is not the issuer cannot open it: it is parsed as
*unverified* and its identity and keys are unknown. A parsed token keeps its exact
``tokendata`` and ``signature`` bytes and re-emits them unchanged.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from missile.clock import Clock, system_clock
from missile.crypto.context import CryptoContext
from missile.encoding import MAX_LONG_VALUE, EncoderFormat, MslObject, decode, encode
from missile.errors import MslCryptoException, MslEncodingException, MslError
from missile.tokens._common import (
    KEY_IDENTITY,
    KEY_ISSUER_DATA,
    KEY_SERIAL_NUMBER,
    TimedToken,
    TokenErrors,
    check_token_fields,
    read_signed_token,
    sign_token_data,
)

__all__ = ["MasterToken"]

KEY_SEQUENCE_NUMBER = "sequencenumber"
KEY_SESSION_DATA = "sessiondata"
KEY_ENCRYPTION_KEY = "encryptionkey"
KEY_ENCRYPTION_ALGORITHM = "encryptionalgorithm"
KEY_HMAC_KEY = "hmackey"
KEY_SIGNATURE_KEY = "signaturekey"
KEY_SIGNATURE_ALGORITHM = "signaturealgorithm"

ENCRYPTION_ALGORITHMS = frozenset({"AES"})
SIGNATURE_ALGORITHMS = frozenset({"HmacSHA256", "AESCmac"})

_ERRORS = TokenErrors(
    tokendata_missing=MslError.MASTERTOKEN_TOKENDATA_MISSING,
    tokendata_parse=MslError.MASTERTOKEN_TOKENDATA_PARSE_ERROR,
    expires_before_renewal=MslError.MASTERTOKEN_EXPIRES_BEFORE_RENEWAL,
    serial_ranges=(
        MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_RANGE,
        MslError.MASTERTOKEN_SERIAL_NUMBER_OUT_OF_RANGE,
    ),
    payload_missing=MslError.MASTERTOKEN_SESSIONDATA_MISSING,
)


def _session_data(
    identity: str,
    encryption_key: bytes,
    signature_key: bytes,
    signature_algorithm: str,
    issuer_data: dict[str, Any] | None,
    encoder_format: EncoderFormat,
) -> dict[str, Any]:
    """The session data to encrypt (tokens.md §1.2).

    JSON writes every key, both key names for the signature key, as the reference does
    for older stacks. The binary format has no older stacks (only missile reads it), so
    it writes what a reader needs and no more (docs/binary-format.md §7.1): the signature
    key once, as ``signaturekey``, and the algorithm names only when not the defaults
    (``AES``, ``HmacSHA256``). That is 96 bytes less on every message under the token.
    """
    if encoder_format is EncoderFormat.JSON:
        return {
            KEY_IDENTITY: identity,
            KEY_ENCRYPTION_KEY: encryption_key,
            KEY_ENCRYPTION_ALGORITHM: "AES",
            # Both key names, same bytes, for older stacks (tokens.md §1.2).
            KEY_HMAC_KEY: signature_key,
            KEY_SIGNATURE_KEY: signature_key,
            KEY_SIGNATURE_ALGORITHM: signature_algorithm,
            KEY_ISSUER_DATA: issuer_data,
        }
    return {
        KEY_IDENTITY: identity,
        KEY_ENCRYPTION_KEY: encryption_key,
        KEY_SIGNATURE_KEY: signature_key,
        KEY_SIGNATURE_ALGORITHM: None if signature_algorithm == "HmacSHA256" else signature_algorithm,
        KEY_ISSUER_DATA: issuer_data,
    }


# The wraparound rule of tokens.md §1.6: a gap larger than 2^53 - 127 means the
# sequence numbers wrapped.
_WRAP_WINDOW = MAX_LONG_VALUE - 127


@dataclass(frozen=True, eq=False, repr=False)
class MasterToken(TimedToken):
    """A master token, as created by its issuer or parsed from the wire."""

    renewal_window: int
    """When renewal becomes possible, seconds since the epoch."""
    expiration: int
    """When the token expires, seconds since the epoch."""
    sequence_number: int
    """Issue counter, incremented on renewal (0 … 2^53, wrapping)."""
    serial_number: int
    """Random identifier kept across renewals; other tokens bind to it."""
    tokendata: bytes
    """The exact encoded token data (what the signature covers)."""
    signature: bytes
    """The signature envelope over ``tokendata``."""
    verified: bool
    """True when the local MSL keys verified the signature."""
    identity: str | None = None
    """The entity identity; None unless decrypted."""
    encryption_key: bytes | None = None
    """The session AES-128 key; None unless decrypted."""
    signature_key: bytes | None = None
    """The session HMAC (or CMAC) key; None unless decrypted."""
    encryption_algorithm: str = "AES"
    """Session encryption algorithm name."""
    signature_algorithm: str = "HmacSHA256"
    """Session signature algorithm name (``HmacSHA256`` or ``AESCmac``)."""
    issuer_data: dict[str, Any] | None = None
    """Issuer data from the session data, if any (JSON values)."""
    clock: Clock = field(default=system_clock, compare=False)
    """Local clock used when no remote time is given."""

    # -- creation ---------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        msl_crypto: CryptoContext,
        *,
        renewal_window_ms: int,
        expiration_ms: int,
        sequence_number: int,
        serial_number: int,
        identity: str,
        encryption_key: bytes,
        signature_key: bytes,
        issuer_data: dict[str, Any] | None = None,
        signature_algorithm: str = "HmacSHA256",
        clock: Clock = system_clock,
        encoder_format: EncoderFormat = EncoderFormat.JSON,
    ) -> MasterToken:
        """Issue a master token protected by the issuer's MSL crypto context (tokens.md §1.3),
        its token data and session data written in ``encoder_format`` (JSON by default: a
        token may travel to any of the issuer's peers, docs/binary-format.md §7)."""
        serial_keys = (KEY_SEQUENCE_NUMBER, KEY_SERIAL_NUMBER)
        check_token_fields(_ERRORS, renewal_window_ms, expiration_ms, (sequence_number, serial_number))
        if signature_algorithm not in SIGNATURE_ALGORITHMS:
            raise MslCryptoException(MslError.UNIDENTIFIED_ALGORITHM, signature_algorithm)
        session = _session_data(
            identity, encryption_key, signature_key, signature_algorithm, issuer_data, encoder_format
        )
        signed = sign_token_data(
            msl_crypto,
            renewal_window_ms,
            expiration_ms,
            (sequence_number, serial_number),
            serial_keys,
            KEY_SESSION_DATA,
            encode(session, encoder_format),
            encoder_format,
        )
        return cls(
            renewal_window=signed.renewal_window,
            expiration=signed.expiration,
            sequence_number=sequence_number,
            serial_number=serial_number,
            tokendata=signed.tokendata,
            signature=signed.signature,
            verified=True,
            identity=identity,
            encryption_key=encryption_key,
            signature_key=signature_key,
            signature_algorithm=signature_algorithm,
            issuer_data=issuer_data,
            clock=clock,
        )

    # -- parsing ----------------------------------------------------------------------

    @classmethod
    def parse(cls, obj: MslObject, msl_crypto: CryptoContext, *, clock: Clock = system_clock) -> MasterToken:
        """Parse a master token object; verify and decrypt it if ``msl_crypto`` can (§1.4)."""
        signed = read_signed_token(obj, msl_crypto, _ERRORS, (KEY_SEQUENCE_NUMBER, KEY_SERIAL_NUMBER), KEY_SESSION_DATA)
        token = cls(
            renewal_window=signed.renewal_window,
            expiration=signed.expiration,
            sequence_number=signed.serials[0],
            serial_number=signed.serials[1],
            tokendata=signed.tokendata,
            signature=signed.signature,
            verified=signed.verified,
            clock=clock,
        )
        if not signed.verified:
            return token
        return token._with_session(msl_crypto.decrypt(signed.payload))

    def _with_session(self, plaintext: bytes) -> MasterToken:
        try:
            session = decode(plaintext)
            identity = session.get_string(KEY_IDENTITY)
            encryption_key = session.get_bytes(KEY_ENCRYPTION_KEY)
            signature_key = (
                session.get_bytes(KEY_SIGNATURE_KEY)
                if KEY_SIGNATURE_KEY in session
                else session.get_bytes(KEY_HMAC_KEY)
            )
            issuer = session.opt_object(KEY_ISSUER_DATA)
        except MslEncodingException as exc:
            raise MslEncodingException(MslError.MASTERTOKEN_SESSIONDATA_PARSE_ERROR, exc.detail) from exc
        # The algorithm names are read leniently: a mistyped value counts as absent
        # (encoding.md §1), an unknown name is an error.
        enc_algo = session.to_dict().get(KEY_ENCRYPTION_ALGORITHM, "AES")
        sig_algo = session.to_dict().get(KEY_SIGNATURE_ALGORITHM, "HmacSHA256")
        enc_algo = enc_algo if isinstance(enc_algo, str) else "AES"
        sig_algo = sig_algo if isinstance(sig_algo, str) else "HmacSHA256"
        if enc_algo not in ENCRYPTION_ALGORITHMS:
            raise MslCryptoException(MslError.UNIDENTIFIED_ALGORITHM, f"encryption algorithm {enc_algo!r}")
        if sig_algo not in SIGNATURE_ALGORITHMS:
            raise MslCryptoException(MslError.UNIDENTIFIED_ALGORITHM, f"signature algorithm {sig_algo!r}")
        if len(encryption_key) not in (16, 24, 32):
            raise MslCryptoException(MslError.MASTERTOKEN_KEY_CREATION_ERROR, "bad encryption key length")
        if not signature_key or (sig_algo == "AESCmac" and len(signature_key) not in (16, 24, 32)):
            raise MslCryptoException(MslError.MASTERTOKEN_KEY_CREATION_ERROR, "bad signature key length")
        return MasterToken(
            renewal_window=self.renewal_window,
            expiration=self.expiration,
            sequence_number=self.sequence_number,
            serial_number=self.serial_number,
            tokendata=self.tokendata,
            signature=self.signature,
            verified=True,
            identity=identity,
            encryption_key=encryption_key,
            signature_key=signature_key,
            encryption_algorithm=enc_algo,
            signature_algorithm=sig_algo,
            issuer_data=issuer.to_dict() if issuer is not None else None,
            clock=self.clock,
        )

    # -- protocol rules ---------------------------------------------------------------

    @property
    def decrypted(self) -> bool:
        """True when the session data (identity and keys) is available."""
        return self.identity is not None

    def is_newer_than(self, other: MasterToken) -> bool:
        """Sequence-number ordering with wraparound (tokens.md §1.6); serials are ignored."""
        if self.sequence_number == other.sequence_number:
            return self.expiration > other.expiration
        if self.sequence_number > other.sequence_number:
            return other.sequence_number >= self.sequence_number - _WRAP_WINDOW
        return self.sequence_number < other.sequence_number - _WRAP_WINDOW

    @functools.cached_property
    def key(self) -> tuple[int, int, int]:
        """The identity used by stores: (serial number, sequence number, expiration).

        Computed once: the fields it reads are frozen (``replace()`` builds a new token,
        which computes its own), and stores look a token up several times per message."""
        return (self.serial_number, self.sequence_number, self.expiration)

    @functools.cached_property
    def _hash(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MasterToken) and other.key == self.key

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        # Never print key material.
        return (
            f"MasterToken(serial={self.serial_number}, seq={self.sequence_number}, "
            f"expiration={self.expiration}, verified={self.verified}, identity={self.identity!r})"
        )

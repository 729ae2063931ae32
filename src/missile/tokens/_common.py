"""Shared pieces of the three token types: the outer ``{tokendata, signature}`` shape
and the renewal/expiry rules (tokens.md §1.5)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from missile.clock import Clock
from missile.crypto.context import CryptoContext
from missile.encoding import EncoderFormat, MslObject, cbor, decode, encode, in_range
from missile.encoding.codec import to_json_value
from missile.errors import MslEncodingException, MslError, MslException

KEY_TOKENDATA = "tokendata"
KEY_SIGNATURE = "signature"
KEY_RENEWAL_WINDOW = "renewalwindow"
KEY_EXPIRATION = "expiration"
KEY_SERIAL_NUMBER = "serialnumber"
KEY_MT_SERIAL_NUMBER = "mtserialnumber"
KEY_ISSUER_DATA = "issuerdata"
KEY_IDENTITY = "identity"


def read_outer(obj: MslObject, missing: MslError) -> tuple[bytes, bytes]:
    """Read ``tokendata`` and ``signature``; a missing or mistyped key is MSL_PARSE_ERROR,
    empty token data is the token type's ``*_TOKENDATA_MISSING``."""
    tokendata = obj.get_bytes(KEY_TOKENDATA)
    signature = obj.get_bytes(KEY_SIGNATURE)
    if not tokendata:
        raise MslEncodingException(missing, "empty tokendata")
    return tokendata, signature


def is_renewable(renewal_window: int, verified: bool, clock: Clock, now_ms: int | None) -> bool:
    """tokens.md §1.5: with a given time compare it; else only an issuer (verified) trusts
    its own clock; a holder that cannot verify assumes renewable."""
    if now_ms is not None:
        return renewal_window * 1000 <= now_ms
    if verified:
        return renewal_window * 1000 <= clock()
    return True


def is_expired(expiration: int, verified: bool, clock: Clock, now_ms: int | None) -> bool:
    """tokens.md §1.5: a holder that cannot verify never assumes expiry."""
    if now_ms is not None:
        return expiration * 1000 <= now_ms
    if verified:
        return expiration * 1000 <= clock()
    return False


@dataclass(frozen=True)
class TokenErrors:
    """The MslErrors one token type raises for the failures master and user ID tokens share."""

    tokendata_missing: MslError
    tokendata_parse: MslError
    expires_before_renewal: MslError
    serial_ranges: tuple[MslError, MslError]
    payload_missing: MslError


@dataclass(frozen=True)
class SignedTokenData:
    """The verified-or-not token data of a master or user ID token, range-checked.

    When issuing, ``payload`` is the plaintext session or user data (session keys): it
    never appears in the repr.
    """

    tokendata: bytes
    signature: bytes
    verified: bool
    renewal_window: int
    expiration: int
    serials: tuple[int, int]
    payload: bytes = field(repr=False)


def read_signed_token(
    obj: MslObject,
    msl_crypto: CryptoContext,
    errors: TokenErrors,
    serial_keys: tuple[str, str],
    payload_key: str,
) -> SignedTokenData:
    """tokens.md §1.4 / §2.2: read the outer object, verify with the MSL keys (a bad
    signature only marks the token unverified), parse and range-check the token data."""
    tokendata, signature = read_outer(obj, errors.tokendata_missing)
    verified = msl_crypto.verify(tokendata, signature)
    try:
        data = decode(tokendata)
        renewal_window = data.get_int(KEY_RENEWAL_WINDOW)
        expiration = data.get_int(KEY_EXPIRATION)
        serials = (data.get_int(serial_keys[0]), data.get_int(serial_keys[1]))
        payload = data.get_bytes(payload_key)
    except MslEncodingException as exc:
        raise MslEncodingException(errors.tokendata_parse, exc.detail) from exc
    check_token_fields(errors, renewal_window, expiration, serials)
    if not payload:
        raise MslEncodingException(errors.payload_missing)
    return SignedTokenData(tokendata, signature, verified, renewal_window, expiration, serials, payload)


def check_token_fields(errors: TokenErrors, renewal_window: int, expiration: int, serials: tuple[int, int]) -> None:
    """Checks master and user ID tokens share, when issued and when parsed (tokens.md §1,
    §2): expiration not before the renewal window (any one unit), identifiers in range."""
    if expiration < renewal_window:
        raise MslException(errors.expires_before_renewal)
    for value, error in zip(serials, errors.serial_ranges, strict=True):
        if not in_range(value):
            raise MslException(error)


def sign_token_data(
    msl_crypto: CryptoContext,
    renewal_window_ms: int,
    expiration_ms: int,
    serials: tuple[int, int],
    serial_keys: tuple[str, str],
    payload_key: str,
    payload: bytes,
    encoder_format: EncoderFormat = EncoderFormat.JSON,
) -> SignedTokenData:
    """Encrypt ``payload`` and sign the token data with the MSL keys (times in seconds),
    the token data and the envelope of ``payload`` written in ``encoder_format``."""
    renewal_window = renewal_window_ms // 1000
    expiration = expiration_ms // 1000
    tokendata = encode(
        {
            KEY_RENEWAL_WINDOW: renewal_window,
            KEY_EXPIRATION: expiration,
            serial_keys[0]: serials[0],
            serial_keys[1]: serials[1],
            payload_key: msl_crypto.encrypt_in_format(payload, encoder_format),
        },
        encoder_format,
    )
    return SignedTokenData(
        tokendata, msl_crypto.sign(tokendata), True, renewal_window, expiration, serials, payload
    )


class TimedToken:
    """Renewal and expiry checks and the wire form shared by master and user ID tokens."""

    renewal_window: int
    expiration: int
    verified: bool
    clock: Clock
    tokendata: bytes
    signature: bytes

    def is_renewable(self, now_ms: int | None = None) -> bool:
        """True once the renewal window has opened (tokens.md §1.5)."""
        return is_renewable(self.renewal_window, self.verified, self.clock, now_ms)

    def is_expired(self, now_ms: int | None = None) -> bool:
        """True once the token has expired (tokens.md §1.5)."""
        return is_expired(self.expiration, self.verified, self.clock, now_ms)

    def to_msl(self) -> dict[str, bytes]:
        """The wire object: the original token data and signature bytes."""
        return {KEY_TOKENDATA: self.tokendata, KEY_SIGNATURE: self.signature}

    @functools.cached_property
    def json_value(self) -> dict[str, Any]:
        """:meth:`to_msl` as a JSON value, computed once (the token never changes)."""
        return to_json_value(self.to_msl())  # type: ignore[no-any-return]

    @functools.cached_property
    def cbor_encoded(self) -> bytes:
        """:meth:`to_msl` as a binary-format map (no identifier byte), computed once."""
        return cbor.encode_value(self.to_msl())

    @functools.cached_property
    def encoded(self) -> bytes:
        """:meth:`to_msl` encoded, computed once (the token never changes)."""
        return encode(self.json_value)

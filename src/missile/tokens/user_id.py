"""User ID tokens (tokens.md §2).

A user ID token names a user and is bound to one master token by its serial number.
Like master tokens it is encrypted and signed with the issuer's MSL keys, so only the
issuer learns the user; holders keep and re-send the exact bytes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from missile.clock import Clock, system_clock
from missile.crypto.context import CryptoContext
from missile.encoding import EncoderFormat, MslObject, decode, encode
from missile.errors import MslEncodingException, MslError, MslException, MslUserIdTokenException
from missile.tokens._common import (
    KEY_IDENTITY,
    KEY_ISSUER_DATA,
    KEY_MT_SERIAL_NUMBER,
    KEY_SERIAL_NUMBER,
    TimedToken,
    TokenErrors,
    check_token_fields,
    read_signed_token,
    sign_token_data,
)
from missile.tokens.master import MasterToken
from missile.tokens.user import MslUser, UserFactory, default_user_factory

__all__ = ["UserIdToken"]

KEY_USER_DATA = "userdata"

_ERRORS = TokenErrors(
    tokendata_missing=MslError.USERIDTOKEN_TOKENDATA_MISSING,
    tokendata_parse=MslError.USERIDTOKEN_TOKENDATA_PARSE_ERROR,
    expires_before_renewal=MslError.USERIDTOKEN_EXPIRES_BEFORE_RENEWAL,
    serial_ranges=(
        MslError.USERIDTOKEN_MASTERTOKEN_SERIAL_NUMBER_OUT_OF_RANGE,
        MslError.USERIDTOKEN_SERIAL_NUMBER_OUT_OF_RANGE,
    ),
    payload_missing=MslError.USERIDTOKEN_USERDATA_MISSING,
)


@dataclass(frozen=True, eq=False, repr=False)
class UserIdToken(TimedToken):
    """A user ID token, as created by its issuer or parsed from the wire."""

    renewal_window: int
    """When renewal becomes possible, seconds since the epoch."""
    expiration: int
    """When the token expires, seconds since the epoch."""
    mt_serial_number: int
    """Serial number of the master token this token is bound to."""
    serial_number: int
    """This token's serial number."""
    tokendata: bytes
    """The exact encoded token data."""
    signature: bytes
    """The signature envelope over ``tokendata``."""
    verified: bool
    """True when the local MSL keys verified the signature."""
    user: MslUser | None = None
    """The user; None unless decrypted."""
    issuer_data: dict[str, Any] | None = None
    """Issuer data from the user data, if any."""
    clock: Clock = field(default=system_clock, compare=False)
    """Local clock used when no remote time is given."""

    @classmethod
    def create(
        cls,
        msl_crypto: CryptoContext,
        *,
        renewal_window_ms: int,
        expiration_ms: int,
        master_token: MasterToken,
        serial_number: int,
        user: MslUser,
        issuer_data: dict[str, Any] | None = None,
        clock: Clock = system_clock,
        encoder_format: EncoderFormat = EncoderFormat.JSON,
    ) -> UserIdToken:
        """Issue a user ID token bound to ``master_token`` (tokens.md §2.2), written in
        ``encoder_format``."""
        serials = (master_token.serial_number, serial_number)
        check_token_fields(_ERRORS, renewal_window_ms, expiration_ms, serials)
        identity = user.encode()
        if not identity:
            raise MslException(MslError.USERIDTOKEN_IDENTITY_INVALID)
        userdata: dict[str, Any] = {KEY_IDENTITY: identity, KEY_ISSUER_DATA: issuer_data}
        signed = sign_token_data(
            msl_crypto,
            renewal_window_ms,
            expiration_ms,
            serials,
            (KEY_MT_SERIAL_NUMBER, KEY_SERIAL_NUMBER),
            KEY_USER_DATA,
            encode(userdata, encoder_format),
            encoder_format,
        )
        return cls(
            renewal_window=signed.renewal_window,
            expiration=signed.expiration,
            mt_serial_number=master_token.serial_number,
            serial_number=serial_number,
            tokendata=signed.tokendata,
            signature=signed.signature,
            verified=True,
            user=user,
            issuer_data=issuer_data,
            clock=clock,
        )

    @classmethod
    def parse(
        cls,
        obj: MslObject,
        msl_crypto: CryptoContext,
        master_token: MasterToken | None,
        *,
        user_factory: UserFactory = default_user_factory,
        clock: Clock = system_clock,
    ) -> UserIdToken:
        """Parse a user ID token expected to be bound to ``master_token`` (tokens.md §2.2)."""
        signed = read_signed_token(obj, msl_crypto, _ERRORS, (KEY_MT_SERIAL_NUMBER, KEY_SERIAL_NUMBER), KEY_USER_DATA)
        mt_serial_number, serial_number = signed.serials
        user: MslUser | None = None
        issuer: MslObject | None = None
        if signed.verified:
            plaintext = msl_crypto.decrypt(signed.payload)
            try:
                parsed = decode(plaintext)
                identity = parsed.get_string(KEY_IDENTITY)
                issuer = parsed.opt_object(KEY_ISSUER_DATA)
            except MslEncodingException as exc:
                raise MslEncodingException(MslError.USERIDTOKEN_USERDATA_PARSE_ERROR, exc.detail) from exc
            if not identity:
                raise MslException(MslError.USERIDTOKEN_IDENTITY_INVALID, "empty identity")
            user = user_factory(identity)
        if master_token is None or master_token.serial_number != mt_serial_number:
            raise MslUserIdTokenException(
                MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH,
                f"uit mtserialnumber {mt_serial_number}; "
                f"mt serialnumber {master_token.serial_number if master_token else None}",
            ).set_master_token(master_token)
        return cls(
            renewal_window=signed.renewal_window,
            expiration=signed.expiration,
            mt_serial_number=mt_serial_number,
            serial_number=serial_number,
            tokendata=signed.tokendata,
            signature=signed.signature,
            verified=signed.verified,
            user=user,
            issuer_data=issuer.to_dict() if issuer is not None else None,
            clock=clock,
        )

    @property
    def decrypted(self) -> bool:
        """True when the user is known."""
        return self.user is not None

    def is_bound_to(self, master_token: MasterToken | None) -> bool:
        """True when bound to ``master_token``."""
        return master_token is not None and master_token.serial_number == self.mt_serial_number

    @functools.cached_property
    def key(self) -> tuple[int, int]:
        """Identity of the token: (serial number, master token serial number), computed
        once (the fields are frozen; ``replace()`` builds a new token)."""
        return (self.serial_number, self.mt_serial_number)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UserIdToken) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return (
            f"UserIdToken(serial={self.serial_number}, mt_serial={self.mt_serial_number}, "
            f"verified={self.verified}, user={self.user!r})"
        )

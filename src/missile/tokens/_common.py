"""Shared pieces of the three token types: the outer ``{tokendata, signature}`` shape
and the renewal/expiry rules (tokens.md §1.5)."""

from __future__ import annotations

from missile.clock import Clock
from missile.encoding import MslObject
from missile.errors import MslEncodingException, MslError

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

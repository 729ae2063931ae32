"""Service tokens (tokens.md §3).

Named, cookie-like application tokens, optionally bound to a master token and/or a user
ID token, protected with service keys chosen by token name (the ``""`` entry is the
default). Empty service data means "delete this token".
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from missile.crypto.context import CryptoContext
from missile.encoding import EncoderFormat, MslObject, cbor, decode, encode, in_range
from missile.encoding.codec import to_json_value
from missile.encoding.compression import (
    DEFAULT_MAX_DEFLATE_RATIO,
    CompressionAlgorithm,
    compress,
    decompress,
)
from missile.errors import MslError, MslException, MslInternalException
from missile.tokens._common import KEY_MT_SERIAL_NUMBER, read_outer
from missile.tokens.master import MasterToken
from missile.tokens.user_id import UserIdToken

__all__ = ["ServiceToken", "select_crypto_context"]

KEY_NAME = "name"
KEY_UIT_SERIAL_NUMBER = "uitserialnumber"
KEY_ENCRYPTED = "encrypted"
KEY_COMPRESSION_ALGO = "compressionalgo"
KEY_SERVICE_DATA = "servicedata"


def select_crypto_context(name: str, contexts: Mapping[str, CryptoContext]) -> CryptoContext | None:
    """Exact name match, else the default ``""`` entry, else None (tokens.md §3.2)."""
    ctx = contexts.get(name)
    return ctx if ctx is not None else contexts.get("")


@dataclass(frozen=True, eq=False, repr=False)
class ServiceToken:
    """A service token, as created locally or parsed from the wire."""

    name: str
    """The token name."""
    mt_serial_number: int | None
    """Serial number of the bound master token; None when unbound."""
    uit_serial_number: int | None
    """Serial number of the bound user ID token; None when unbound."""
    encrypted: bool
    """Whether the service data is encrypted on the wire."""
    compression_algo: CompressionAlgorithm | None
    """Compression applied before encryption, if any."""
    tokendata: bytes
    """The exact encoded token data."""
    signature: bytes
    """The signature envelope over ``tokendata``."""
    verified: bool
    """True when a service crypto context verified the signature."""
    data: bytes | None
    """The application data; None when it could not be verified and decrypted."""
    deleted: bool
    """True for a deletion token (empty service data)."""

    @classmethod
    def create(
        cls,
        name: str,
        data: bytes,
        crypto: CryptoContext,
        *,
        master_token: MasterToken | None = None,
        user_id_token: UserIdToken | None = None,
        encrypted: bool = True,
        compression: CompressionAlgorithm | None = None,
        max_ratio: int | None = DEFAULT_MAX_DEFLATE_RATIO,
        encoder_format: EncoderFormat = EncoderFormat.JSON,
    ) -> ServiceToken:
        """Create a service token bound to the given tokens (tokens.md §3.3), its token
        data written in ``encoder_format`` (the service data stays as ``crypto`` made it).

        Compression is kept only when smaller and within ``max_ratio`` (None lifts it).
        """
        if user_id_token is not None and master_token is not None and not user_id_token.is_bound_to(
            master_token
        ):
            raise MslInternalException("user ID token is not bound to the master token")
        compressed = compress(compression, data) if compression is not None and data else None
        # As for payload chunks: never beyond the ratio receivers enforce (encoding.md §8.1).
        if compressed is not None and max_ratio is not None and len(compressed) * max_ratio < len(data):
            compressed = None
        algo = compression if compressed is not None else None
        plain = compressed if compressed is not None else data
        # An empty value is never encrypted (it is a deletion).
        service_data = crypto.encrypt(plain) if encrypted and plain else plain
        mt_serial = master_token.serial_number if master_token is not None else None
        uit_serial = user_id_token.serial_number if user_id_token is not None else None
        fields: dict[str, Any] = {
            KEY_NAME: name,
            KEY_MT_SERIAL_NUMBER: mt_serial,
            KEY_UIT_SERIAL_NUMBER: uit_serial,
            KEY_ENCRYPTED: encrypted,
            KEY_COMPRESSION_ALGO: algo,
            KEY_SERVICE_DATA: service_data,
        }
        tokendata = encode(fields, encoder_format)
        return cls(
            name=name,
            mt_serial_number=mt_serial,
            uit_serial_number=uit_serial,
            encrypted=encrypted,
            compression_algo=algo,
            tokendata=tokendata,
            signature=crypto.sign(tokendata),
            verified=True,
            data=data,
            deleted=not data,
        )

    @classmethod
    def parse(
        cls,
        obj: MslObject,
        crypto_contexts: Mapping[str, CryptoContext],
        master_token: MasterToken | None = None,
        user_id_token: UserIdToken | None = None,
        *,
        max_deflate_ratio: int = DEFAULT_MAX_DEFLATE_RATIO,
    ) -> ServiceToken:
        """Parse, verify, decrypt and binding-check a service token (tokens.md §3.4)."""
        tokendata, signature = read_outer(obj, MslError.SERVICETOKEN_TOKENDATA_MISSING)
        # No dedicated parse error for service tokens: malformed data is MSL_PARSE_ERROR.
        data = decode(tokendata)
        name = data.get_string(KEY_NAME)
        crypto = select_crypto_context(name, crypto_contexts)
        verified = crypto is not None and crypto.verify(tokendata, signature)
        mt_serial = data.opt_int(KEY_MT_SERIAL_NUMBER)
        uit_serial = data.opt_int(KEY_UIT_SERIAL_NUMBER)
        encrypted = data.get_bool(KEY_ENCRYPTED)
        algo_name = data.opt_string(KEY_COMPRESSION_ALGO)
        service_data = data.get_bytes(KEY_SERVICE_DATA)
        if mt_serial is not None and not in_range(mt_serial):
            raise MslException(MslError.SERVICETOKEN_MASTERTOKEN_SERIAL_NUMBER_OUT_OF_RANGE)
        if uit_serial is not None and not in_range(uit_serial):
            raise MslException(MslError.SERVICETOKEN_USERIDTOKEN_SERIAL_NUMBER_OUT_OF_RANGE)
        algo = CompressionAlgorithm.from_wire(algo_name) if algo_name is not None else None

        plain: bytes | None
        if not service_data:
            plain = b""
        elif verified:
            assert crypto is not None
            raw = crypto.decrypt(service_data) if encrypted else service_data
            plain = decompress(algo, raw, max_ratio=max_deflate_ratio) if algo is not None else raw
        else:
            plain = None

        if mt_serial is not None and (master_token is None or master_token.serial_number != mt_serial):
            raise MslException(
                MslError.SERVICETOKEN_MASTERTOKEN_MISMATCH,
                f"st mtserialnumber {mt_serial}; mt {master_token.serial_number if master_token else None}",
            ).set_master_token(master_token)
        if uit_serial is not None and (user_id_token is None or user_id_token.serial_number != uit_serial):
            raise MslException(
                MslError.SERVICETOKEN_USERIDTOKEN_MISMATCH,
                f"st uitserialnumber {uit_serial}; "
                f"uit {user_id_token.serial_number if user_id_token else None}",
            ).set_user_id_token(user_id_token)
        return cls(
            name=name,
            mt_serial_number=mt_serial,
            uit_serial_number=uit_serial,
            encrypted=encrypted,
            compression_algo=algo,
            tokendata=tokendata,
            signature=signature,
            verified=verified,
            data=plain,
            deleted=not service_data,
        )

    @property
    def decrypted(self) -> bool:
        """True when the application data is available."""
        return self.data is not None

    @property
    def is_master_token_bound(self) -> bool:
        """True when bound to a master token."""
        return self.mt_serial_number is not None

    @property
    def is_user_id_token_bound(self) -> bool:
        """True when bound to a user ID token."""
        return self.uit_serial_number is not None

    @property
    def is_unbound(self) -> bool:
        """True when bound to neither token."""
        return self.mt_serial_number is None and self.uit_serial_number is None

    def is_bound_to_master_token(self, master_token: MasterToken | None) -> bool:
        """True when bound to ``master_token``."""
        return master_token is not None and self.mt_serial_number == master_token.serial_number

    def is_bound_to_user_id_token(self, user_id_token: UserIdToken | None) -> bool:
        """True when bound to ``user_id_token``."""
        return user_id_token is not None and self.uit_serial_number == user_id_token.serial_number

    @property
    def key(self) -> tuple[str, int | None, int | None]:
        """Uniqueness key: (name, master token serial, user ID token serial) (§3.5)."""
        return (self.name, self.mt_serial_number, self.uit_serial_number)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServiceToken) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return (
            f"ServiceToken(name={self.name!r}, mt_serial={self.mt_serial_number}, "
            f"uit_serial={self.uit_serial_number}, encrypted={self.encrypted}, "
            f"verified={self.verified}, deleted={self.deleted})"
        )

    def to_msl(self) -> dict[str, bytes]:
        """The wire object: the original token data and signature bytes."""
        return {"tokendata": self.tokendata, "signature": self.signature}

    @functools.cached_property
    def json_value(self) -> dict[str, Any]:
        """:meth:`to_msl` as a JSON value, computed once (the token never changes)."""
        return to_json_value(self.to_msl())  # type: ignore[no-any-return]

    @functools.cached_property
    def cbor_encoded(self) -> bytes:
        """:meth:`to_msl` as a binary-format map (no identifier byte), computed once."""
        return cbor.encode_value(self.to_msl())



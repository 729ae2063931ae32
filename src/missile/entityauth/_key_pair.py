"""What RSA and ECC share: ``{"identity", "pubkeyid"}`` data and a factory over a key pair store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

from missile.encoding import MslObject
from missile.entityauth.base import (
    KEY_IDENTITY,
    EntityAuthData,
    EntityAuthFactory,
    IdentityEntityAuthData,
    checked,
    expect_data,
)
from missile.entityauth.stores import KeyPairStore
from missile.errors import MslEntityAuthException, MslError

if TYPE_CHECKING:
    from missile.context import MslContext

KEY_PUBKEY_ID = "pubkeyid"

_D = TypeVar("_D", bound="KeyPairEntityAuthData")
_PublicKeyT = TypeVar("_PublicKeyT")
_PrivateKeyT = TypeVar("_PrivateKeyT")


class KeyPairEntityAuthData(IdentityEntityAuthData):
    """``{"identity": string, "pubkeyid": string}``."""

    encrypts: ClassVar[bool] = False
    protects_integrity: ClassVar[bool] = True

    def __init__(self, identity: str, pubkeyid: str) -> None:
        super().__init__(identity)
        self.pubkeyid = pubkeyid

    def authdata(self) -> Mapping[str, Any]:
        return {KEY_IDENTITY: self.identity, KEY_PUBKEY_ID: self.pubkeyid}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext) -> Self:
        return cls(authdata.get_string(KEY_IDENTITY), authdata.get_string(KEY_PUBKEY_ID))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(identity={self.identity!r}, pubkeyid={self.pubkeyid!r})"


class KeyPairEntityAuthFactory(EntityAuthFactory, Generic[_D, _PublicKeyT, _PrivateKeyT]):
    """Checks, then the keys of ``pubkeyid`` from the store.

    ``local_key_pair_id`` is the local entity's own key pair: data naming it needs the
    private key (``private_key_missing``); any other ``pubkeyid`` needs a public key
    (``public_key_missing``).
    """

    data_class: type[_D]
    private_key_missing: ClassVar[MslError]
    public_key_missing: ClassVar[MslError]

    def __init__(self, store: KeyPairStore[_PublicKeyT, _PrivateKeyT], local_key_pair_id: str | None = None) -> None:
        self.store = store
        self.local_key_pair_id = local_key_pair_id

    def _keys(self, ctx: MslContext, data: EntityAuthData) -> tuple[_D, _PrivateKeyT | None, _PublicKeyT | None]:
        """The checked data with its private and public key (either may be None, not both needed)."""
        pair_data = expect_data(data, self.data_class)
        checked(ctx, pair_data, pair_data.identity, self.scheme)
        pubkeyid = pair_data.pubkeyid
        public_key = self.store.get_public_key(pubkeyid)
        private_key = self.store.get_private_key(pubkeyid)
        if pubkeyid == self.local_key_pair_id:
            if private_key is None:
                raise MslEntityAuthException(self.private_key_missing, pubkeyid).set_entity_auth_data(pair_data)
        elif public_key is None:
            raise MslEntityAuthException(self.public_key_missing, pubkeyid).set_entity_auth_data(pair_data)
        return pair_data, private_key, public_key

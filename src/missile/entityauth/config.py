"""Entity authentication from a key file (the ``keys`` object of the shared vectors)."""

from __future__ import annotations

from missile.entityauth.base import EntityAuthData, EntityAuthFactory
from missile.entityauth.mt_protected import MtProtectedEntityAuthFactory
from missile.entityauth.none import NoneEntityAuthData, NoneEntityAuthFactory
from missile.entityauth.none_suffixed import NoneSuffixedEntityAuthData, NoneSuffixedEntityAuthFactory
from missile.entityauth.provisioned import ProvisionedEntityAuthData
from missile.entityauth.psk import PskEntityAuthData, PskEntityAuthFactory
from missile.entityauth.psk_profile import PskProfileEntityAuthData, PskProfileEntityAuthFactory
from missile.entityauth.rsa import RsaEntityAuthData, RsaEntityAuthFactory
from missile.entityauth.stores import InMemoryKeySetStore, InMemoryRsaStore
from missile.errors import MslEncodingException, MslEntityAuthException, MslError
from missile.keyfile import KeyFile

__all__ = ["entity_auth_from_keyfile", "local_entity_auth_data"]


def _field(entry: dict[str, object], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise MslEncodingException(MslError.MSL_PARSE_ERROR, f"key file: entity_auth '{key}' missing")
    return value


def local_entity_auth_data(keys: KeyFile) -> EntityAuthData | None:
    """The entity's own authentication data from ``keys.entity_auth`` (None if absent).

    Schemes: PSK, PSK_PROFILE (``pskid``, ``profile``), RSA (``keypairid``), NONE,
    NONE_SUFFIXED (``root``, ``suffix``) and PROVISIONED; ``identity`` defaults to the
    key file's identity.
    """
    entry = dict(keys.entity_auth)
    if not entry:
        return None
    scheme = _field(entry, "scheme")
    entry.setdefault("identity", keys.identity)
    if scheme == PskEntityAuthData.scheme:
        return PskEntityAuthData(_field(entry, "identity"))
    if scheme == PskProfileEntityAuthData.scheme:
        return PskProfileEntityAuthData(_field(entry, "pskid"), _field(entry, "profile"))
    if scheme == RsaEntityAuthData.scheme:
        return RsaEntityAuthData(_field(entry, "identity"), _field(entry, "keypairid"))
    if scheme == NoneEntityAuthData.scheme:
        return NoneEntityAuthData(_field(entry, "identity"))
    if scheme == NoneSuffixedEntityAuthData.scheme:
        return NoneSuffixedEntityAuthData(_field(entry, "root"), _field(entry, "suffix"))
    if scheme == ProvisionedEntityAuthData.scheme:
        return ProvisionedEntityAuthData()
    raise MslEntityAuthException(MslError.UNIDENTIFIED_ENTITYAUTH_SCHEME, f"key file scheme {scheme!r}")


def entity_auth_from_keyfile(keys: KeyFile) -> tuple[EntityAuthData | None, dict[str, EntityAuthFactory]]:
    """The local entity auth data and the factories the key file supports.

    Always NONE, NONE_SUFFIXED and MT_PROTECTED; PSK and PSK_PROFILE over ``keys.psk``
    (Kpw derived when absent); RSA over ``keys.rsa`` with the local key pair ID of an
    RSA ``entity_auth``. X509, ECC and PROVISIONED need stores a key file does not
    describe; add their factories yourself.
    """
    data = local_entity_auth_data(keys)
    factories: dict[str, EntityAuthFactory] = {
        NoneEntityAuthFactory.scheme: NoneEntityAuthFactory(),
        NoneSuffixedEntityAuthFactory.scheme: NoneSuffixedEntityAuthFactory(),
        MtProtectedEntityAuthFactory.scheme: MtProtectedEntityAuthFactory(),
    }
    if keys.psk:
        psk_store = InMemoryKeySetStore()
        for entry in keys.psk:
            psk_store.add(entry.identity, entry.encryption_key, entry.hmac_key, entry.wrap_key)
        factories[PskEntityAuthFactory.scheme] = PskEntityAuthFactory(psk_store)
        factories[PskProfileEntityAuthFactory.scheme] = PskProfileEntityAuthFactory(psk_store)
    local_key_pair_id = data.pubkeyid if isinstance(data, RsaEntityAuthData) else None
    if keys.rsa or local_key_pair_id is not None:
        rsa_store = InMemoryRsaStore()
        for pair in keys.rsa:
            rsa_store.add_der(pair.key_pair_id, pair.public_der, pair.private_der)
        factories[RsaEntityAuthFactory.scheme] = RsaEntityAuthFactory(rsa_store, local_key_pair_id)
    return data, factories

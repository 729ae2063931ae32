"""Entity authentication (entityauth.md).

Importing this package registers every built-in scheme: NONE, NONE_SUFFIXED, PSK,
PSK_PROFILE, X509, RSA, ECC, MT_PROTECTED and PROVISIONED. An application scheme is
one more :class:`EntityAuthData` subclass decorated with
``@ENTITY_AUTH_SCHEMES.register`` plus an :class:`EntityAuthFactory` in the context.
"""

from missile.entityauth.base import ENTITY_AUTH_SCHEMES, EntityAuthData, EntityAuthFactory, parse_entity_auth_data
from missile.entityauth.config import entity_auth_from_keyfile, local_entity_auth_data
from missile.entityauth.ecc import EccEntityAuthData, EccEntityAuthFactory
from missile.entityauth.mt_protected import MtProtectedEntityAuthData, MtProtectedEntityAuthFactory
from missile.entityauth.none import NoneEntityAuthData, NoneEntityAuthFactory
from missile.entityauth.none_suffixed import NoneSuffixedEntityAuthData, NoneSuffixedEntityAuthFactory
from missile.entityauth.provisioned import ProvisionedEntityAuthData, ProvisionedEntityAuthFactory
from missile.entityauth.psk import PskEntityAuthData, PskEntityAuthFactory
from missile.entityauth.psk_profile import PskProfileEntityAuthData, PskProfileEntityAuthFactory
from missile.entityauth.rsa import RsaEntityAuthData, RsaEntityAuthFactory
from missile.entityauth.stores import (
    EccStore,
    IdentityProvisioningService,
    InMemoryEccStore,
    InMemoryIdentityProvisioningService,
    InMemoryKeySetStore,
    InMemoryRsaStore,
    InMemoryX509Store,
    KeySet,
    KeySetStore,
    RsaStore,
    X509Store,
    rfc2253_name,
)
from missile.entityauth.x509 import X509EntityAuthData, X509EntityAuthFactory

__all__ = [
    "ENTITY_AUTH_SCHEMES",
    "EccEntityAuthData",
    "EccEntityAuthFactory",
    "EccStore",
    "EntityAuthData",
    "EntityAuthFactory",
    "IdentityProvisioningService",
    "InMemoryEccStore",
    "InMemoryIdentityProvisioningService",
    "InMemoryKeySetStore",
    "InMemoryRsaStore",
    "InMemoryX509Store",
    "KeySet",
    "KeySetStore",
    "MtProtectedEntityAuthData",
    "MtProtectedEntityAuthFactory",
    "NoneEntityAuthData",
    "NoneEntityAuthFactory",
    "NoneSuffixedEntityAuthData",
    "NoneSuffixedEntityAuthFactory",
    "ProvisionedEntityAuthData",
    "ProvisionedEntityAuthFactory",
    "PskEntityAuthData",
    "PskEntityAuthFactory",
    "PskProfileEntityAuthData",
    "PskProfileEntityAuthFactory",
    "RsaEntityAuthData",
    "RsaEntityAuthFactory",
    "RsaStore",
    "X509EntityAuthData",
    "X509EntityAuthFactory",
    "X509Store",
    "entity_auth_from_keyfile",
    "local_entity_auth_data",
    "parse_entity_auth_data",
    "rfc2253_name",
]

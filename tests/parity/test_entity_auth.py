"""Entity authentication failure cases the reference probes (EntityAuthenticationDataTest
and the *AuthenticationDataTest / *AuthenticationFactoryTest classes) beyond
tests/entityauth: the generic envelope, each scheme's required fields, and the
master-token-protected scheme's embedded fields."""

from __future__ import annotations

from typing import Any

import pytest

from entityauth.test_schemes import _mt_object, mt_ctx
from missile.context import INSECURE_SCHEMES
from missile.encoding import MslObject
from missile.entityauth import (
    EccEntityAuthData,
    NoneEntityAuthData,
    NoneSuffixedEntityAuthData,
    PskEntityAuthData,
    PskProfileEntityAuthData,
    RsaEntityAuthData,
    X509EntityAuthData,
    parse_entity_auth_data,
)
from missile.entityauth.base import EntityAuthData
from missile.errors import MslError

from ._helpers import raises, reconfigured


@pytest.mark.parametrize(
    "obj",
    [
        {"authdata": {"identity": "client1"}},
        {"scheme": "PSK"},
        {"scheme": 7, "authdata": {"identity": "client1"}},
        {"scheme": "PSK", "authdata": "x"},
    ],
    ids=["noScheme", "noAuthdata", "scheme-mistyped", "authdata-not-object"],
)
def test_envelope(obj: dict[str, Any]) -> None:
    """EntityAuthenticationDataTest: noScheme / noAuthdata."""
    raises(MslError.MSL_PARSE_ERROR, parse_entity_auth_data, MslObject(obj), mt_ctx())


@pytest.mark.parametrize(
    ("cls", "authdata"),
    [
        (NoneEntityAuthData, {}),
        (NoneSuffixedEntityAuthData, {"suffix": "s"}),
        (NoneSuffixedEntityAuthData, {"root": "r"}),
        (PskEntityAuthData, {}),
        (PskProfileEntityAuthData, {"profile": "p"}),
        (PskProfileEntityAuthData, {"pskid": "p"}),
        (RsaEntityAuthData, {"pubkeyid": "k"}),
        (RsaEntityAuthData, {"identity": "x"}),
        (EccEntityAuthData, {"pubkeyid": "k"}),
        (EccEntityAuthData, {"identity": "x"}),
        (X509EntityAuthData, {}),
        (X509EntityAuthData, {"x509certificate": 5}),
    ],
    ids=[
        "none-missingIdentity",
        "none_suffixed-missingRoot",
        "none_suffixed-missingSuffix",
        "psk-missingIdentity",
        "psk_profile-missingPskId",
        "psk_profile-missingProfile",
        "rsa-missingIdentity",
        "rsa-missingPubkeyId",
        "ecc-missingIdentity",
        "ecc-missingPubkeyId",
        "x509-missingX509Cert",
        "x509-mistypedX509Cert",
    ],
)
def test_scheme_required_fields(cls: type[EntityAuthData], authdata: dict[str, Any]) -> None:
    """The missing* cases of every *AuthenticationDataTest."""
    ctx = reconfigured(mt_ctx(), allowed_insecure_schemes=INSECURE_SCHEMES)
    raises(MslError.MSL_PARSE_ERROR, cls.parse, MslObject(authdata), ctx)


@pytest.mark.parametrize(
    "changes",
    [
        {"mastertoken": None},
        {"authdata": None},
        {"authdata": True},
        {"signature": None},
        {"signature": True},
    ],
    ids=["missingMasterToken", "missingAuthdata", "invalidAuthdata", "missingSignature", "invalidSignature"],
)
def test_mt_protected_fields(changes: dict[str, Any]) -> None:
    """MasterTokenProtectedAuthenticationDataTest: missing and mistyped fields."""
    ctx = mt_ctx()
    obj = _mt_object(ctx)
    for key, value in changes.items():
        if value is None:
            del obj["authdata"][key]
        else:
            obj["authdata"][key] = value
    raises(MslError.MSL_PARSE_ERROR, parse_entity_auth_data, MslObject(obj), ctx)


def test_mt_protected_corrupt_authdata_and_signature() -> None:
    """corruptAuthdata / corruptSignature (@Ignore'd in the reference, which reports
    ENTITYAUTH_VERIFICATION_FAILED for both in its code): replaced ciphertext or signature
    bytes fail the signature check."""
    ctx = mt_ctx()
    for key in ("authdata", "signature"):
        obj = _mt_object(ctx)
        obj["authdata"][key] = "eA=="  # b"x"
        raises(MslError.ENTITYAUTH_VERIFICATION_FAILED, parse_entity_auth_data, MslObject(obj), ctx)


def test_mt_protected_master_token_from_another_issuer() -> None:
    """A master token from another issuer (tests/entityauth covers corruptMasterToken,
    ENTITYAUTH_MASTERTOKEN_INVALID): these MSL keys cannot open it."""
    issuer = mt_ctx()
    obj = _mt_object(issuer)
    raises(MslError.ENTITYAUTH_MASTERTOKEN_NOT_DECRYPTED, parse_entity_auth_data, MslObject(obj), _other_issuer())


def _other_issuer() -> Any:
    import os

    from missile.crypto.symmetric import SymmetricCryptoContext

    return reconfigured(mt_ctx(), msl_crypto=SymmetricCryptoContext("other", os.urandom(16), os.urandom(32)))

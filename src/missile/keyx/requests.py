"""Fresh key request data for a requester: what a client sends when it asks for keys.

Each call of the factory returned by :func:`key_request_factory` makes new request
data, with new ephemeral private parts where the scheme has them (ASYMMETRIC_WRAPPED
RSA key pairs, Diffie-Hellman exponents). Ladder exchanges use ``WRAP`` with the newest
wrapping key in the context's repository once one exists, ``PSK`` before.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from missile.context import MslContext
from missile.errors import MslError, MslKeyExchangeException
from missile.keyfile import KeyFile
from missile.keyx.asymmetric_wrapped import AsymmetricWrappedRequest
from missile.keyx.base import KeyRequestData
from missile.keyx.diffie_hellman import DhParameterSpec, DiffieHellmanRequest
from missile.keyx.jwe_ladder import JweLadderRequest
from missile.keyx.jwk_ladder import JwkLadderRequest
from missile.keyx.repository import InMemoryWrapCryptoContextRepository
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest

__all__ = ["KEY_EXCHANGE_SCHEMES", "default_scheme", "key_request_factory"]

KEY_EXCHANGE_SCHEMES = ("ASYMMETRIC_WRAPPED", "SYMMETRIC_WRAPPED", "DIFFIE_HELLMAN", "JWE_LADDER", "JWK_LADDER")


def default_scheme(keys: KeyFile) -> tuple[str, str | None]:
    """The scheme (and mechanism) a key file's ``key_request_data`` names, else a sensible one."""
    for entry in keys.key_request_data:
        scheme = entry.get("scheme")
        if isinstance(scheme, str):
            mechanism = entry.get("mechanism")
            return scheme, mechanism if isinstance(mechanism, str) else None
    if keys.entity_auth.get("scheme") == "PSK":
        return "SYMMETRIC_WRAPPED", None
    return "ASYMMETRIC_WRAPPED", "JWK_RSA"


def key_request_factory(
    ctx: MslContext,
    keys: KeyFile,
    scheme: str | None = None,
    mechanism: str | None = None,
    *,
    rsa_key_size: int = 2048,
) -> Callable[[], Sequence[KeyRequestData]]:
    """A factory of fresh key request data for ``scheme`` (default: from the key file)."""
    if scheme is None:
        scheme, default_mechanism = default_scheme(keys)
        mechanism = mechanism or default_mechanism
    if scheme not in KEY_EXCHANGE_SCHEMES:
        raise MslKeyExchangeException(MslError.UNIDENTIFIED_KEYX_SCHEME, scheme)

    if scheme == "ASYMMETRIC_WRAPPED":
        mech = mechanism or "JWK_RSA"
        return lambda: [AsymmetricWrappedRequest.generate(mech, f"ephemeral-{secrets.token_hex(8)}", rsa_key_size)]
    if scheme == "SYMMETRIC_WRAPPED":
        key_id = mechanism or "PSK"
        return lambda: [SymmetricWrappedRequest(key_id)]
    if scheme == "DIFFIE_HELLMAN":
        if not keys.dh_parameters:
            raise MslKeyExchangeException(MslError.UNKNOWN_KEYX_PARAMETERS_ID, "no Diffie-Hellman parameters")
        wanted = mechanism
        params = next((p for p in keys.dh_parameters if p.parameters_id == wanted), keys.dh_parameters[0])
        spec = DhParameterSpec(params.p, params.g, params.private_bits)
        return lambda: [DiffieHellmanRequest.generate(params.parameters_id, spec, random=ctx.random)]

    cls = JweLadderRequest if scheme == "JWE_LADDER" else JwkLadderRequest

    def ladder() -> Sequence[KeyRequestData]:
        repo = ctx.wrap_repository
        if mechanism != "PSK" and isinstance(repo, InMemoryWrapCryptoContextRepository) and len(repo):
            return [cls("WRAP", repo.wrapdata()[-1])]
        if mechanism == "WRAP":
            raise MslKeyExchangeException(MslError.KEYX_WRAPPING_KEY_MISSING, "no wrapping key yet")
        return [cls("PSK")]

    return ladder

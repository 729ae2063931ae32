"""DIFFIE_HELLMAN key exchange (keyx.md §4).

Finite-field Diffie-Hellman over parameter sets both sides know by ID. Public values
travel as ``0x00 || minimal big-endian magnitude`` (readers accept any number of leading
zeros); session keys are ``SHA-384(enc(z))`` split 16/32 bytes.

Modular exponentiation with a secret exponent uses ``cryptography``'s DH key agreement
(OpenSSL, constant time). ``cryptography`` cannot derive a public value from a private
one, so ``g^x`` is computed as the key agreement of ``x`` with the peer value ``g``.
Only where ``cryptography`` refuses the group (p below its 512-bit minimum, or FFDH
unavailable in a future release) Python's built-in ``pow`` is used instead, which is not
constant time. Private values come from the context's random source. ``cryptography`` >= 46
deprecates FFDH and warns whenever its DH classes are looked up; missile looks them up
once, at import, with that warning silenced, and changes no process-wide warning filter.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, runtime_checkable

from cryptography.exceptions import UnsupportedAlgorithm

from missile.crypto.context import CryptoContext
from missile.crypto.derivation import derive_dh_session_keys, dh_int_from_bytes, dh_int_to_bytes
from missile.crypto.random import DEFAULT_RANDOM, RandomSource
from missile.errors import MslError, MslKeyExchangeException
from missile.keyx import _common
from missile.keyx.base import (
    KEY_REQUEST_SCHEMES,
    KEY_RESPONSE_SCHEMES,
    KeyRequestData,
    KeyResponseData,
)
from missile.tokens.master import MasterToken

# Finite-field DH is what MSL's DIFFIE_HELLMAN scheme is. cryptography warns each time a
# DH class is looked up in its module; the classes are bound here once instead (a lookup
# per exchange would warn, and cost a warnings.warn call, every time).
_FFDH: Any
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives.asymmetric.dh import DHParameterNumbers, DHPrivateNumbers, DHPublicNumbers

    _FFDH = (DHParameterNumbers, DHPrivateNumbers, DHPublicNumbers)
except ImportError:  # pragma: no cover - FFDH removed from cryptography: pow() takes over
    _FFDH = None

if TYPE_CHECKING:
    from missile.context import MslContext
    from missile.encoding import MslObject

__all__ = [
    "DIFFIE_HELLMAN",
    "DhParameterSpec",
    "DiffieHellmanParameters",
    "InMemoryDiffieHellmanParameters",
    "DiffieHellmanRequest",
    "DiffieHellmanResponse",
    "DiffieHellmanExchange",
    "generate_private_value",
    "public_value",
    "shared_secret",
]

DIFFIE_HELLMAN = "DIFFIE_HELLMAN"

KEY_PARAMETERS_ID = "parametersid"
KEY_PUBLIC_KEY = "publickey"

_CRYPTOGRAPHY_MIN_P_BITS = 512


@dataclass(frozen=True, slots=True)
class DhParameterSpec:
    """A finite-field group: prime modulus ``p`` and generator ``g``.

    ``private_bits`` shortens private exponents to that many bits. Only set it for
    safe-prime groups (such as the RFC 3526 / RFC 7919 groups), where an exponent of
    twice the group's security strength is standard (NIST SP 800-56A rev. 3
    §5.6.1.1.1; RFC 3526 §8): 256 bits for a 2048-bit group, a ~8x speed-up. Unset, the
    exponent is uniform over the whole group, safe for any prime.
    """

    p: int
    g: int
    private_bits: int | None = None

    def __post_init__(self) -> None:
        if self.p < 7 or self.p % 2 == 0:
            raise ValueError("p must be an odd prime")
        if not 2 <= self.g <= self.p - 2:
            raise ValueError("g must be in 2..p-2")
        if self.private_bits is not None and not 160 <= self.private_bits < self.p.bit_length():
            raise ValueError("private_bits must be at least 160 and below the size of p")

    def check_public(self, y: int) -> None:
        """Public values outside ``2..p-2`` are ``KEYX_INVALID_PUBLIC_KEY``."""
        if not 2 <= y <= self.p - 2:
            raise MslKeyExchangeException(MslError.KEYX_INVALID_PUBLIC_KEY, "public value out of range")

    def __repr__(self) -> str:
        return f"DhParameterSpec(p_bits={self.p.bit_length()}, g={self.g})"


@runtime_checkable
class DiffieHellmanParameters(Protocol):
    """The parameter sets a side knows, by ID (the reference's DiffieHellmanParameters)."""

    def parameter_spec(self, parameters_id: str) -> DhParameterSpec | None:
        """The parameters with this ID, or None."""
        ...


class InMemoryDiffieHellmanParameters:
    """A :class:`DiffieHellmanParameters` held in memory."""

    def __init__(self, specs: Mapping[str, DhParameterSpec] | None = None) -> None:
        self._lock = threading.Lock()
        self._specs: dict[str, DhParameterSpec] = dict(specs or {})

    def add(self, parameters_id: str, spec: DhParameterSpec) -> None:
        """Add or replace a parameter set."""
        with self._lock:
            self._specs[parameters_id] = spec

    def parameter_spec(self, parameters_id: str) -> DhParameterSpec | None:
        """The parameters with this ID, or None."""
        with self._lock:
            return self._specs.get(parameters_id)

    def ids(self) -> list[str]:
        """The known parameter IDs."""
        with self._lock:
            return list(self._specs)

    def __repr__(self) -> str:
        return f"InMemoryDiffieHellmanParameters(ids={self.ids()!r})"


def _openssl_private_key(spec: DhParameterSpec, exponent: int) -> Any:
    """A ``cryptography`` DH private key holding ``exponent``, or None when the group is
    below ``cryptography``'s minimum or FFDH is unavailable."""
    if spec.p.bit_length() < _CRYPTOGRAPHY_MIN_P_BITS or _FFDH is None:
        return None
    parameter_numbers, private_numbers, public_numbers = _FFDH
    try:
        numbers = parameter_numbers(spec.p, spec.g)
        # cryptography cannot derive y from x and the agreement never reads it: pass g.
        return private_numbers(exponent, public_numbers(spec.g, numbers)).private_key()
    except (UnsupportedAlgorithm, ValueError):
        return None


def _modexp(base: int, exponent: int, spec: DhParameterSpec) -> int:
    """``base^exponent mod p`` for a secret exponent (see the module docstring)."""
    private = _openssl_private_key(spec, exponent)
    if private is None:
        return pow(base, exponent, spec.p)
    try:
        peer = _FFDH[2](base, private.parameters().parameter_numbers()).public_key()
        secret: bytes = private.exchange(peer)
    except ValueError as exc:
        raise MslKeyExchangeException(MslError.KEYX_INVALID_PUBLIC_KEY, "public value rejected", cause=exc) from exc
    return int.from_bytes(secret, "big")


def generate_private_value(spec: DhParameterSpec, random: RandomSource) -> int:
    """A private value uniform (up to 2^-64 bias) in ``2..p-2``, or in
    ``2..2^private_bits`` for a group that allows short exponents."""
    if spec.private_bits is not None:
        nbytes = (spec.private_bits + 7) // 8 + 8
        return 2 + int.from_bytes(random.random_bytes(nbytes), "big") % ((1 << spec.private_bits) - 2)
    nbytes = (spec.p.bit_length() + 7) // 8 + 8
    return 2 + int.from_bytes(random.random_bytes(nbytes), "big") % (spec.p - 3)


def public_value(spec: DhParameterSpec, private_value: int) -> int:
    """``g^x mod p``."""
    return _modexp(spec.g, private_value, spec)


def shared_secret(spec: DhParameterSpec, private_value: int, peer_public: int) -> int:
    """``y_peer^x mod p`` after checking ``y_peer`` is in ``2..p-2``."""
    spec.check_public(peer_public)
    return _modexp(peer_public, private_value, spec)


def _read_public(keydata: MslObject) -> int:
    data = keydata.get_bytes(KEY_PUBLIC_KEY)
    if not data:
        raise MslKeyExchangeException(MslError.KEYX_INVALID_PUBLIC_KEY, "empty public key")
    return dh_int_from_bytes(data)


@KEY_REQUEST_SCHEMES.register
class DiffieHellmanRequest(KeyRequestData):
    """``{"parametersid", "publickey"}``; a requester's copy also holds x (and may hold p, g)."""

    scheme: ClassVar[str] = DIFFIE_HELLMAN

    def __init__(
        self,
        parameters_id: str,
        public_key: int,
        private_key: int | None = None,
        parameters: DhParameterSpec | None = None,
    ) -> None:
        self.parameters_id = parameters_id
        self.public_key = public_key
        """The public value y."""
        self.private_key = private_key
        """The private value x (requester only)."""
        self.parameters = parameters
        """The group, when the requester keeps it with its private value."""

    @classmethod
    def generate(
        cls, parameters_id: str, params: DhParameterSpec, *, random: RandomSource = DEFAULT_RANDOM
    ) -> DiffieHellmanRequest:
        """A fresh key pair on ``params`` (pass the context's random source)."""
        x = generate_private_value(params, random)
        return cls(parameters_id, public_value(params, x), x, params)

    def keydata(self) -> dict[str, Any]:
        return {KEY_PARAMETERS_ID: self.parameters_id, KEY_PUBLIC_KEY: dh_int_to_bytes(self.public_key)}

    @classmethod
    def parse(cls, keydata: MslObject, ctx: MslContext) -> Self:
        return cls(keydata.get_string(KEY_PARAMETERS_ID), _read_public(keydata))

    def __repr__(self) -> str:
        return (
            f"DiffieHellmanRequest(parametersid={self.parameters_id!r}, "
            f"private_key={'present' if self.private_key is not None else 'absent'})"
        )


@KEY_RESPONSE_SCHEMES.register
class DiffieHellmanResponse(KeyResponseData):
    """``{"parametersid", "publickey"}`` with the responder's public value."""

    scheme: ClassVar[str] = DIFFIE_HELLMAN

    def __init__(self, master_token: MasterToken, parameters_id: str, public_key: int) -> None:
        self.master_token = master_token
        self.parameters_id = parameters_id
        self.public_key = public_key

    def keydata(self) -> dict[str, Any]:
        return {KEY_PARAMETERS_ID: self.parameters_id, KEY_PUBLIC_KEY: dh_int_to_bytes(self.public_key)}

    @classmethod
    def parse(cls, keydata: MslObject, master_token: MasterToken, ctx: MslContext) -> Self:
        return cls(master_token, keydata.get_string(KEY_PARAMETERS_ID), _read_public(keydata))

    def __repr__(self) -> str:
        return f"DiffieHellmanResponse(parametersid={self.parameters_id!r}, master_token={self.master_token!r})"


class DiffieHellmanExchange(_common.BuiltinKeyExchange[DiffieHellmanRequest, DiffieHellmanResponse]):
    """Both sides of DIFFIE_HELLMAN (keyx.md §4)."""

    scheme: ClassVar[str] = DIFFIE_HELLMAN
    request_class = DiffieHellmanRequest
    response_class = DiffieHellmanResponse

    def __init__(self, parameters: DiffieHellmanParameters) -> None:
        self.parameters = parameters

    def _spec(self, parameters_id: str) -> DhParameterSpec:
        spec = self.parameters.parameter_spec(parameters_id)
        if spec is None:
            raise MslKeyExchangeException(MslError.UNKNOWN_KEYX_PARAMETERS_ID, repr(parameters_id))
        return spec

    def _respond(self, ctx: MslContext, req: DiffieHellmanRequest, issuance: _common.Issuance) -> DiffieHellmanResponse:
        spec = self._spec(req.parameters_id)
        spec.check_public(req.public_key)
        x = generate_private_value(spec, ctx.random)
        keys = derive_dh_session_keys(shared_secret(spec, x, req.public_key))
        new_token = issuance.issue(ctx, keys.encryption_key, keys.hmac_key)
        return DiffieHellmanResponse(new_token, req.parameters_id, public_value(spec, x))

    def _recover(
        self, ctx: MslContext, req: DiffieHellmanRequest, resp: DiffieHellmanResponse, master_token: MasterToken | None
    ) -> CryptoContext:
        if req.parameters_id != resp.parameters_id:
            raise _common.mismatch("parametersid")
        if req.private_key is None:
            raise MslKeyExchangeException(MslError.KEYX_PRIVATE_KEY_MISSING, req.parameters_id)
        spec = req.parameters if req.parameters is not None else self._spec(req.parameters_id)
        keys = derive_dh_session_keys(shared_secret(spec, req.private_key, resp.public_key))
        return _common.requester_session_context(ctx, resp, keys.encryption_key, keys.hmac_key)

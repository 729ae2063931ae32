"""The key file: one JSON description of an entity's keys and sessions.

This is the ``keys`` object of the shared vectors (see ``tests/vectors/README.md``):
the entity's role, identity and entity auth, the MSL token keys, PSK key sets, RSA key
pairs, users, Diffie-Hellman parameters, service token keys, outstanding key request
data, held master tokens and ladder wrap keys. The vector tests, the CLI and the
examples all read keys through this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from missile.crypto.random import DEFAULT_RANDOM, RandomSource
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import b64decode
from missile.errors import MslEncodingException, MslError

__all__ = ["KeyFile", "PskKeySet", "RsaKeyPair", "TokenKeys", "UserEntry", "DhParameters", "HeldMasterToken"]


def _b64(entry: dict[str, Any], key: str) -> bytes:
    value = entry.get(key)
    if not isinstance(value, str):
        raise MslEncodingException(MslError.MSL_PARSE_ERROR, f"key file: '{key}' missing")
    return b64decode(value)


def _opt_b64(entry: dict[str, Any], key: str) -> bytes | None:
    return _b64(entry, key) if key in entry else None


@dataclass(frozen=True)
class TokenKeys:
    """The issuer's MSL keys protecting master and user ID tokens."""

    key_id: str
    encryption_key: bytes = field(repr=False)
    hmac_key: bytes = field(repr=False)
    wrap_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PskKeySet:
    """A pre-shared key set of one entity identity."""

    identity: str
    encryption_key: bytes = field(repr=False)
    hmac_key: bytes = field(repr=False)
    wrap_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RsaKeyPair:
    """An RSA key pair by ID: X.509 SubjectPublicKeyInfo DER and optional PKCS#8 DER."""

    key_pair_id: str
    public_der: bytes = field(repr=False)
    private_der: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class UserEntry:
    """An EMAIL_PASSWORD user."""

    email: str
    password: str = field(repr=False)
    user: str


@dataclass(frozen=True)
class DhParameters:
    """A Diffie-Hellman parameter set by ID."""

    parameters_id: str
    p: int
    g: int
    private_bits: int | None = None
    """Short private exponents for a safe-prime group (missile's own key file field)."""


@dataclass(frozen=True)
class HeldMasterToken:
    """A session the entity already holds: the token's JSON bytes and its session keys."""

    mastertoken: bytes = field(repr=False)
    identity: str | None
    encryption_key: bytes = field(repr=False)
    hmac_key: bytes = field(repr=False)


@dataclass(frozen=True)
class ServiceTokenKeys:
    """Keys protecting the service tokens of one name (``""`` is the default)."""

    name: str
    key_id: str
    encryption_key: bytes = field(repr=False)
    hmac_key: bytes = field(repr=False)


@dataclass
class KeyFile:
    """A parsed key file. Key material and passwords never appear in the repr."""

    role: str
    identity: str
    time_ms: int | None = None
    entity_auth: dict[str, Any] = field(default_factory=dict)
    token_keys: TokenKeys | None = None
    psk: list[PskKeySet] = field(default_factory=list)
    rsa: list[RsaKeyPair] = field(default_factory=list)
    users: list[UserEntry] = field(default_factory=list)
    dh_parameters: list[DhParameters] = field(default_factory=list)
    service_token_keys: list[ServiceTokenKeys] = field(default_factory=list)
    key_request_data: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """Outstanding key requests as in the file, private keys included (never in the repr)."""
    master_tokens: list[HeldMasterToken] = field(default_factory=list)
    wrap_keys: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """Ladder wrapping keys as in the file (never in the repr)."""
    bound_master_token: bytes | None = field(default=None, repr=False)
    bound_user_id_token: bytes | None = field(default=None, repr=False)
    token_factory: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    """The decoded JSON, every key included (never in the repr)."""

    @classmethod
    def load(cls, path: str | Path) -> KeyFile:
        """Read a key file; a whole vector file (with a ``keys`` member) is accepted too."""
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MslEncodingException(MslError.MSL_PARSE_ERROR, f"key file {path} is not JSON") from exc
        if isinstance(data, dict) and isinstance(data.get("keys"), dict):
            data = data["keys"]
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeyFile:
        """Build from the decoded JSON ``keys`` object; malformed entries are MSL_PARSE_ERROR."""
        try:
            return cls._from_dict(d)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, MslEncodingException):
                raise
            raise MslEncodingException(MslError.MSL_PARSE_ERROR, f"malformed key file: {type(exc).__name__}") from exc

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> KeyFile:
        if not isinstance(d, dict) or not isinstance(d.get("identity", ""), str):
            raise MslEncodingException(MslError.MSL_PARSE_ERROR, "key file is not an object")
        tk = d.get("msl_token_keys")
        krd = d.get("key_request_data") or []
        if isinstance(krd, dict):
            krd = [krd]
        entity_auth = dict(d.get("entity_auth") or {})
        return cls(
            role=str(d.get("role", "client")),
            identity=str(d.get("identity") or entity_auth.get("identity") or ""),
            time_ms=d.get("time_ms"),
            entity_auth=entity_auth,
            token_keys=(
                TokenKeys(
                    str(tk.get("keyid", d.get("identity", ""))),
                    _b64(tk, "encryption_b64"),
                    _b64(tk, "hmac_b64"),
                    _opt_b64(tk, "wrap_b64"),
                )
                if isinstance(tk, dict)
                else None
            ),
            psk=[
                PskKeySet(p["identity"], _b64(p, "encryption_b64"), _b64(p, "hmac_b64"), _opt_b64(p, "wrap_b64"))
                for p in d.get("psk") or []
            ],
            rsa=[
                RsaKeyPair(r["keypairid"], _b64(r, "public_b64"), _opt_b64(r, "private_b64"))
                for r in d.get("rsa") or []
            ],
            users=[UserEntry(u["email"], u["password"], u.get("user", u["email"])) for u in d.get("users") or []],
            dh_parameters=[
                DhParameters(p["id"], int(p["p_hex"], 16), int(p["g_hex"], 16), p.get("private_bits"))
                for p in d.get("dh_parameters") or []
            ],
            service_token_keys=[
                ServiceTokenKeys(s.get("name", ""), s.get("keyid", ""), _b64(s, "encryption_b64"), _b64(s, "hmac_b64"))
                for s in d.get("service_token_keys") or []
            ],
            key_request_data=list(krd),
            master_tokens=[
                HeldMasterToken(
                    _b64(m, "mastertoken_b64"), m.get("identity"), _b64(m, "encryption_b64"), _b64(m, "hmac_b64")
                )
                for m in d.get("master_tokens") or []
            ],
            wrap_keys=list(d.get("wrap_keys") or []),
            bound_master_token=_opt_b64(d, "bound_mastertoken_b64"),
            bound_user_id_token=_opt_b64(d, "bound_useridtoken_b64"),
            token_factory=dict(d.get("token_factory") or {}),
            raw=d,
        )

    def msl_crypto_context(self, random: RandomSource = DEFAULT_RANDOM) -> SymmetricCryptoContext | None:
        """The MSL token-keys context, or None when the file has no token keys."""
        tk = self.token_keys
        if tk is None:
            return None
        return SymmetricCryptoContext(tk.key_id, tk.encryption_key, tk.hmac_key, tk.wrap_key, random=random)

    def service_token_crypto_contexts(self, random: RandomSource = DEFAULT_RANDOM) -> dict[str, SymmetricCryptoContext]:
        """Service token contexts by token name (``""`` is the default)."""
        return {
            s.name: SymmetricCryptoContext(s.key_id, s.encryption_key, s.hmac_key, random=random)
            for s in self.service_token_keys
        }

    def psk_for(self, identity: str) -> PskKeySet | None:
        """The PSK key set of ``identity``."""
        return next((p for p in self.psk if p.identity == identity), None)

    def rsa_for(self, key_pair_id: str) -> RsaKeyPair | None:
        """The RSA key pair with ``key_pair_id``."""
        return next((r for r in self.rsa if r.key_pair_id == key_pair_id), None)

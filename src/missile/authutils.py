"""Authorization hooks the schemes consult (the reference's AuthenticationUtils).

Revocation of entities and which schemes an entity (or entity and user) may use are
deployment policy. The default permits everything and revokes nothing; a deployment
supplies its own :class:`AuthenticationUtils`.
"""

from __future__ import annotations

from typing import Protocol

from missile.tokens.user import MslUser


class AuthenticationUtils(Protocol):
    """Entity revocation and scheme permission checks."""

    def is_entity_revoked(self, identity: str) -> bool:
        """True when the entity identity is revoked (ENTITY_REVOKED)."""
        ...

    def is_scheme_permitted(self, identity: str, scheme: str, user: MslUser | None = None) -> bool:
        """True when the entity (and user, for user auth) may use ``scheme``."""
        ...


class PermissiveAuthenticationUtils:
    """Nothing revoked, every scheme permitted."""

    def is_entity_revoked(self, identity: str) -> bool:
        """True when the entity identity is revoked (ENTITY_REVOKED)."""
        return False

    def is_scheme_permitted(self, identity: str, scheme: str, user: MslUser | None = None) -> bool:
        """True when the entity (and user, for user auth) may use ``scheme``."""
        return True


class ConfigurableAuthenticationUtils:
    """In-memory revocation list and per-identity scheme deny lists."""

    def __init__(self) -> None:
        self.revoked: set[str] = set()
        self.denied: dict[str, set[str]] = {}
        self.denied_user: dict[tuple[str, str], set[str]] = {}

    def revoke(self, identity: str) -> None:
        """Revoke an entity."""
        self.revoked.add(identity)

    def deny(self, identity: str, scheme: str, user: MslUser | None = None) -> None:
        """Forbid ``identity`` (with ``user``) from using ``scheme``."""
        if user is None:
            self.denied.setdefault(identity, set()).add(scheme)
        else:
            self.denied_user.setdefault((identity, user.encode()), set()).add(scheme)

    def is_entity_revoked(self, identity: str) -> bool:
        """True when the entity identity is revoked (ENTITY_REVOKED)."""
        return identity in self.revoked

    def is_scheme_permitted(self, identity: str, scheme: str, user: MslUser | None = None) -> bool:
        """True when the entity (and user, for user auth) may use ``scheme``."""
        if user is not None:
            return scheme not in self.denied_user.get((identity, user.encode()), set())
        return scheme not in self.denied.get(identity, set())

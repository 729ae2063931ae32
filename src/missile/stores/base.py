"""The client store protocol (control.md §2.1).

A store keeps what an entity holds in one MSL network: master tokens with their
session crypto contexts, user ID tokens by local user ID, service tokens and the
non-replayable ID counters.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from missile.crypto.context import CryptoContext
from missile.tokens.master import MasterToken
from missile.tokens.service import ServiceToken
from missile.tokens.user_id import UserIdToken


class MslStore(Protocol):
    """Tokens and session keys held by an entity."""

    def set_crypto_context(self, master_token: MasterToken, crypto_context: CryptoContext | None) -> None:
        """Store a master token with its session context (None removes it)."""
        ...

    def get_crypto_context(self, master_token: MasterToken) -> CryptoContext | None:
        """The session context stored for ``master_token``."""
        ...

    def get_master_token(self) -> MasterToken | None:
        """The newest stored master token."""
        ...

    def get_non_replayable_id(self, master_token: MasterToken) -> int:
        """The next non-replayable ID for the master token's serial number (1, 2, …)."""
        ...

    def remove_crypto_context(self, master_token: MasterToken) -> None:
        """Remove a master token and, if no other token shares its serial, what is bound to it."""
        ...

    def clear_crypto_contexts(self) -> None:
        """Remove everything."""
        ...

    def add_user_id_token(self, user_id: str, user_id_token: UserIdToken) -> None:
        """Store a user ID token under a local user ID."""
        ...

    def get_user_id_token(self, user_id: str) -> UserIdToken | None:
        """The user ID token stored under ``user_id``."""
        ...

    def remove_user_id_token(self, user_id_token: UserIdToken) -> None:
        """Remove a user ID token and the service tokens bound to it."""
        ...

    def clear_user_id_tokens(self) -> None:
        """Remove every user ID token and their bound service tokens."""
        ...

    def add_service_tokens(self, tokens: Iterable[ServiceToken]) -> None:
        """Store service tokens (all or nothing)."""
        ...

    def get_service_tokens(
        self, master_token: MasterToken | None, user_id_token: UserIdToken | None
    ) -> list[ServiceToken]:
        """Unbound tokens plus those bound to the given tokens."""
        ...

    def remove_service_tokens(
        self,
        name: str | None,
        master_token: MasterToken | None,
        user_id_token: UserIdToken | None,
    ) -> None:
        """Remove service tokens by name and/or binding."""
        ...

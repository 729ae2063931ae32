"""An in-memory client store (control.md §2.1), safe for concurrent use."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from missile.crypto.context import CryptoContext
from missile.encoding import next_id
from missile.errors import MslError, MslException
from missile.tokens.master import MasterToken
from missile.tokens.service import ServiceToken
from missile.tokens.user_id import UserIdToken

__all__ = ["InMemoryStore"]


class InMemoryStore:
    """Master tokens with session contexts, user ID tokens, service tokens, replay counters."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._contexts: dict[MasterToken, CryptoContext] = {}
        self._non_replayable: dict[int, int] = {}
        self._user_id_tokens: dict[str, UserIdToken] = {}
        self._service_tokens: dict[tuple[str, int | None, int | None], ServiceToken] = {}
        self._peer_formats: tuple[str, ...] | None = None

    # -- master tokens ----------------------------------------------------------------

    def set_crypto_context(self, master_token: MasterToken, crypto_context: CryptoContext | None) -> None:
        """Store a master token with its session context (None removes it)."""
        with self._lock:
            if crypto_context is None:
                self.remove_crypto_context(master_token)
            else:
                self._contexts.pop(master_token, None)
                self._contexts[master_token] = crypto_context

    def get_crypto_context(self, master_token: MasterToken) -> CryptoContext | None:
        """The session context stored for ``master_token``."""
        with self._lock:
            return self._contexts.get(master_token)

    def get_master_token(self) -> MasterToken | None:
        """The newest stored master token."""
        with self._lock:
            newest: MasterToken | None = None
            for token in self._contexts:
                if newest is None or token.is_newer_than(newest):
                    newest = token
            return newest

    def get_non_replayable_id(self, master_token: MasterToken) -> int:
        """The next non-replayable ID for the master token's serial number (1, 2, …)."""
        with self._lock:
            current = self._non_replayable.get(master_token.serial_number, 0)
            value = next_id(current)
            self._non_replayable[master_token.serial_number] = value
            return value

    def remove_crypto_context(self, master_token: MasterToken) -> None:
        """Remove a master token and, if no other token shares its serial, what is bound to it."""
        with self._lock:
            self._contexts.pop(master_token, None)
            serial = master_token.serial_number
            if any(t.serial_number == serial for t in self._contexts):
                return
            self._non_replayable.pop(serial, None)
            for user_id, uit in list(self._user_id_tokens.items()):
                if uit.mt_serial_number == serial:
                    self._remove_user_id_token_locked(user_id, uit)
            for key, st in list(self._service_tokens.items()):
                if st.mt_serial_number == serial:
                    del self._service_tokens[key]

    def clear_crypto_contexts(self) -> None:
        """Remove everything."""
        with self._lock:
            self._contexts.clear()
            self._non_replayable.clear()
            self._user_id_tokens.clear()
            self._service_tokens.clear()

    # -- user ID tokens -----------------------------------------------------------------

    def set_peer_encoder_formats(self, formats: Sequence[str]) -> None:
        """Remember the encoder format names the server advertised (docs/binary-format.md §8)."""
        with self._lock:
            self._peer_formats = tuple(formats)

    def get_peer_encoder_formats(self) -> tuple[str, ...] | None:
        """The encoder format names the server last advertised, or None if never heard."""
        with self._lock:
            return self._peer_formats

    def add_user_id_token(self, user_id: str, user_id_token: UserIdToken) -> None:
        """Store a user ID token under a local user ID."""
        with self._lock:
            if not any(t.serial_number == user_id_token.mt_serial_number for t in self._contexts):
                raise MslException(MslError.USERIDTOKEN_MASTERTOKEN_NOT_FOUND, user_id)
            self._user_id_tokens[user_id] = user_id_token

    def get_user_id_token(self, user_id: str) -> UserIdToken | None:
        """The user ID token stored under ``user_id``."""
        with self._lock:
            return self._user_id_tokens.get(user_id)

    def remove_user_id_token(self, user_id_token: UserIdToken) -> None:
        """Remove a user ID token and the service tokens bound to it."""
        with self._lock:
            for user_id, uit in list(self._user_id_tokens.items()):
                if uit == user_id_token:
                    self._remove_user_id_token_locked(user_id, uit)

    def _remove_user_id_token_locked(self, user_id: str, user_id_token: UserIdToken) -> None:
        self._user_id_tokens.pop(user_id, None)
        for key, st in list(self._service_tokens.items()):
            if st.uit_serial_number == user_id_token.serial_number:
                del self._service_tokens[key]

    def clear_user_id_tokens(self) -> None:
        """Remove every user ID token and their bound service tokens."""
        with self._lock:
            for user_id, uit in list(self._user_id_tokens.items()):
                self._remove_user_id_token_locked(user_id, uit)

    # -- service tokens -----------------------------------------------------------------

    def add_service_tokens(self, tokens: Iterable[ServiceToken]) -> None:
        """Store service tokens (all or nothing)."""
        tokens = list(tokens)
        with self._lock:
            serials = {t.serial_number for t in self._contexts}
            uit_serials = {t.serial_number for t in self._user_id_tokens.values()}
            for st in tokens:
                if st.mt_serial_number is not None and st.mt_serial_number not in serials:
                    raise MslException(MslError.SERVICETOKEN_MASTERTOKEN_NOT_FOUND, st.name)
                if st.uit_serial_number is not None and st.uit_serial_number not in uit_serials:
                    raise MslException(MslError.SERVICETOKEN_USERIDTOKEN_NOT_FOUND, st.name)
            for st in tokens:
                # Newest data wins (control.md §2.1 note).
                self._service_tokens[st.key] = st

    def get_service_tokens(
        self, master_token: MasterToken | None, user_id_token: UserIdToken | None
    ) -> list[ServiceToken]:
        """Unbound tokens plus those bound to the given tokens."""
        if user_id_token is not None:
            if master_token is None:
                raise MslException(MslError.USERIDTOKEN_MASTERTOKEN_NULL)
            if not user_id_token.is_bound_to(master_token):
                raise MslException(MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH)
        with self._lock:
            result = []
            for st in self._service_tokens.values():
                if st.is_unbound:
                    result.append(st)
                elif st.uit_serial_number is None:
                    if master_token is not None and st.mt_serial_number == master_token.serial_number:
                        result.append(st)
                elif (
                    user_id_token is not None
                    and st.uit_serial_number == user_id_token.serial_number
                    and (st.mt_serial_number is None or st.mt_serial_number == user_id_token.mt_serial_number)
                ):
                    result.append(st)
            return result

    def remove_service_tokens(
        self,
        name: str | None,
        master_token: MasterToken | None,
        user_id_token: UserIdToken | None,
    ) -> None:
        """Remove service tokens by name and/or binding."""
        if user_id_token is not None and master_token is not None and not user_id_token.is_bound_to(master_token):
            raise MslException(MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH)
        with self._lock:
            for key, st in list(self._service_tokens.items()):
                if name is not None and st.name != name:
                    continue
                if user_id_token is not None:
                    if st.uit_serial_number != user_id_token.serial_number:
                        continue
                elif master_token is not None:
                    if st.mt_serial_number != master_token.serial_number:
                        continue
                elif not st.is_unbound:
                    continue
                del self._service_tokens[key]

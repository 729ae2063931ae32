"""What :mod:`missile.client`, :mod:`missile.server` and :mod:`missile.peer` share:
reading the ``keys=``, ``state=``, ``key_exchange=`` and ``users=`` options, the
per-call options, and reporting misconfiguration.

Misconfiguration is found where it is made: a missing or malformed key file, a key file
of the wrong role, an unknown key exchange scheme or a state location that cannot be used
raise :class:`ConfigError` when the client or server is constructed, with a message that
names the option (``keys=``, ``state=``, ``key_exchange=``...) and, where there is one,
the remedy. Without this, the same mistakes surface later as an MSL error from the
peer (a server answering ``KEYX_REQUIRED``), far from their cause.
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Self, TypedDict

from missile.crypto.context import CryptoContext
from missile.engine.options import MessageOptions
from missile.errors import MslException
from missile.keyfile import KeyFile
from missile.keyx.requests import KEY_EXCHANGE_SCHEMES, key_request_factory
from missile.stores.base import MslStore
from missile.stores.open import MEMORY, open_token_state
from missile.tokens.service import ServiceToken
from missile.tokens.state import TokenState
from missile.tokens.user import MslUser
from missile.userauth.base import UserAuthFactory
from missile.userauth.config import user_auth_from_keyfile
from missile.userauth.email_password import (
    EmailPasswordAuthData,
    EmailPasswordAuthFactory,
    EmailPasswordStore,
    InMemoryEmailPasswordStore,
)

__all__ = [
    "AsyncClosing",
    "CallOptions",
    "ConfigError",
    "KeysOption",
    "key_request_factory_for",
    "load_keys",
    "message_options",
    "open_state",
    "open_store",
    "user_factories",
]

#: The ``keys=`` option: a key file path, or a loaded :class:`~missile.keyfile.KeyFile`.
KeysOption = str | os.PathLike[str] | KeyFile


class AsyncClosing(ABC):
    """An object holding resources: ``async with`` closes it with :meth:`aclose`."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release what the object holds (idempotent)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class ConfigError(ValueError):
    """A client or server option is wrong; the message names the option."""


def load_keys(keys: KeysOption, role: str, *, needed_by: str | None = None) -> KeyFile:
    """The key file for ``role`` ("client" or "server"), set to the wall clock.

    ``needed_by`` names who needs it when that is not ``role`` itself (a peer needs a
    server key file). A :class:`KeyFile` passed in is copied, never modified. Its
    ``time_ms`` (the fixed clock of a test vector) is dropped: the front door is for
    live traffic.
    """
    if isinstance(keys, KeyFile):
        loaded = keys
        shown = f"KeyFile({keys.identity!r})"
    else:
        shown = os.fspath(keys)
        if not os.path.exists(shown):
            raise ConfigError(f"keys={shown!r}: no such file (write a pair with `missile keygen DIR`)")
        try:
            loaded = KeyFile.load(shown)
        except MslException as exc:
            raise ConfigError(f"keys={shown!r}: not a key file ({exc.detail or exc.error.name})") from exc
        except OSError as exc:
            raise ConfigError(f"keys={shown!r}: cannot be read ({exc.strerror or type(exc).__name__})") from exc
    if loaded.role and loaded.role != role:
        if needed_by is not None:
            raise ConfigError(
                f"keys={shown!r}: a {loaded.role} key file, but a {needed_by} needs a {role} key file "
                "(with msl_token_keys, to issue tokens)"
            )
        raise ConfigError(
            f"keys={shown!r}: a {loaded.role} key file, but a {role} needs the {role}'s "
            f"(`missile keygen` writes {role}.json)"
        )
    if not loaded.entity_auth.get("scheme"):
        raise ConfigError(f"keys={shown!r}: no entity_auth scheme")
    return dataclasses.replace(loaded, time_ms=None)


class CallOptions(TypedDict, total=False):
    """Per-call choices, the same for every method of both clients (and a peer's requests)."""

    user: EmailPasswordAuthData | str | None
    """Credentials (a user ID token is obtained and reused), or the email of a user whose
    user ID token is already stored."""
    non_replayable: bool
    """Send a non-replayable message (the server accepts its ID once)."""
    encrypted: bool
    """Require encryption of both payloads (default True)."""
    integrity_protected: bool
    """Require integrity protection of both payloads (default True)."""
    requesting_tokens: bool
    """Ask for a master token (and user ID token) even when not needed yet."""
    service_tokens: Sequence[ServiceToken]
    """Service tokens to send besides the stored ones."""


def message_options(options: CallOptions, service_token_contexts: Mapping[str, CryptoContext]) -> MessageOptions:
    """The engine's :class:`MessageOptions` for one call's ``options``."""
    unknown = set(options) - set(CallOptions.__annotations__)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    result = MessageOptions(
        encrypted=options.get("encrypted", True),
        integrity_protected=options.get("integrity_protected", True),
        non_replayable=options.get("non_replayable", False),
        requesting_tokens=options.get("requesting_tokens", False),
        service_tokens=options.get("service_tokens", ()),
        service_token_contexts=service_token_contexts,
    )
    user = options.get("user")
    if isinstance(user, EmailPasswordAuthData):
        result.user_id = user.email
        result.user_auth = user
    elif isinstance(user, str):
        result.user_id = user
    elif user is not None:
        raise TypeError("user=: an EmailPassword or the email of a stored user")
    return result


def open_store(state: str | os.PathLike[str] | None, holder: str = "client") -> MslStore | None:
    """The SQLite session store at ``state``; None for memory (None or ":memory:")."""
    if state is None or os.fspath(state) == MEMORY:
        return None  # context_from_keyfile gives a client an in-memory store
    path = os.fspath(state)
    if "://" in path:
        raise ConfigError(f"state={path!r}: a {holder} keeps its session in a SQLite file path (or None: memory)")
    from missile.stores.sqlite import SqliteStore

    try:
        return SqliteStore(path)
    except MslException as exc:
        raise ConfigError(f"state={path!r}: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"state={path!r}: cannot be used ({exc.strerror or type(exc).__name__})") from exc


def open_state(location: str) -> TokenState:
    """The issuer's token state at ``location`` (see :func:`~missile.stores.open.open_token_state`)."""
    try:
        return open_token_state(location)
    except ValueError as exc:
        raise ConfigError(f"state={location!r}: {exc}") from exc
    except MslException as exc:
        raise ConfigError(f"state={location!r}: cannot be used ({exc.detail or exc.error.name})") from exc
    except OSError as exc:
        raise ConfigError(f"state={location!r}: cannot be used ({exc.strerror or type(exc).__name__})") from exc


def key_request_factory_for(ctx: Any, keys: KeyFile, scheme: str | None, mechanism: str | None) -> Any:
    """The key request factory for ``key_exchange=`` and ``mechanism=`` (default: the key file's)."""
    if scheme is not None and scheme not in KEY_EXCHANGE_SCHEMES:
        raise ConfigError(f"key_exchange={scheme!r}: unknown scheme; choose from {', '.join(KEY_EXCHANGE_SCHEMES)}")
    try:
        return key_request_factory(ctx, keys, scheme, mechanism)
    except MslException as exc:
        raise ConfigError(f"key_exchange={scheme!r}, mechanism={mechanism!r}: {exc.detail or exc.error.name}") from exc


def user_factories(key_file: KeyFile, users: Mapping[str, str] | EmailPasswordStore) -> dict[str, UserAuthFactory]:
    """The key file's user authentication factories, EMAIL_PASSWORD answered from ``users=``."""
    factories = user_auth_from_keyfile(key_file)
    store: EmailPasswordStore
    if isinstance(users, Mapping):
        memory = InMemoryEmailPasswordStore()
        for email, password in users.items():
            memory.add(email, password, MslUser(email))
        store = memory
    else:
        store = users
    factories[EmailPasswordAuthFactory.scheme] = EmailPasswordAuthFactory(store)
    return factories

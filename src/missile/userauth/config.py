"""User authentication from a key file (the ``keys`` object of the shared vectors)."""

from __future__ import annotations

from missile.keyfile import KeyFile
from missile.tokens.user import MslUser
from missile.userauth.base import UserAuthFactory
from missile.userauth.email_password import EmailPasswordAuthFactory, InMemoryEmailPasswordStore
from missile.userauth.user_id_token import UserIdTokenAuthFactory

__all__ = ["user_auth_from_keyfile"]


def user_auth_from_keyfile(keys: KeyFile) -> dict[str, UserAuthFactory]:
    """Factories for a key file: EMAIL_PASSWORD over ``keys.users`` (when any), USER_ID_TOKEN."""
    factories: dict[str, UserAuthFactory] = {UserIdTokenAuthFactory.scheme: UserIdTokenAuthFactory()}
    if keys.users:
        store = InMemoryEmailPasswordStore()
        for entry in keys.users:
            store.add(entry.email, entry.password, MslUser(entry.user))
        factories[EmailPasswordAuthFactory.scheme] = EmailPasswordAuthFactory(store)
    return factories

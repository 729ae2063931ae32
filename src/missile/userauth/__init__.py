"""User authentication (userauth.md).

Importing this package registers the built-in schemes EMAIL_PASSWORD and
USER_ID_TOKEN. An application scheme is one more :class:`UserAuthData` subclass
decorated with ``@USER_AUTH_SCHEMES.register`` plus a :class:`UserAuthFactory`.
"""

from __future__ import annotations

from missile.userauth.base import USER_AUTH_SCHEMES, UserAuthData, UserAuthFactory, parse_user_auth_data
from missile.userauth.config import user_auth_from_keyfile
from missile.userauth.email_password import (
    EmailPasswordAuthData,
    EmailPasswordAuthFactory,
    EmailPasswordStore,
    InMemoryEmailPasswordStore,
    java_trim,
)
from missile.userauth.user_id_token import UserIdTokenAuthData, UserIdTokenAuthFactory

__all__ = [
    "USER_AUTH_SCHEMES",
    "EmailPasswordAuthData",
    "EmailPasswordAuthFactory",
    "EmailPasswordStore",
    "InMemoryEmailPasswordStore",
    "UserAuthData",
    "UserAuthFactory",
    "UserIdTokenAuthData",
    "UserIdTokenAuthFactory",
    "java_trim",
    "parse_user_auth_data",
    "user_auth_from_keyfile",
]

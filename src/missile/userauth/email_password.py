"""EMAIL_PASSWORD user authentication (userauth.md §2)."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

from missile.encoding import MslObject
from missile.errors import MslError, MslUserAuthException
from missile.tokens.master import MasterToken
from missile.tokens.user import MslUser
from missile.tokens.user_id import UserIdToken
from missile.userauth.base import (
    USER_AUTH_SCHEMES,
    UserAuthData,
    UserAuthFactory,
    check_permitted,
    check_user_id_token_user,
    expect_data,
)

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = [
    "EmailPasswordAuthData",
    "EmailPasswordAuthFactory",
    "EmailPasswordStore",
    "InMemoryEmailPasswordStore",
    "check_user_id_token_user",
    "java_trim",
]

KEY_EMAIL = "email"
KEY_PASSWORD = "password"


def java_trim(value: str) -> str:
    """Java ``String.trim()``: drop leading/trailing code points <= U+0020 only."""
    start, end = 0, len(value)
    while start < end and value[start] <= " ":
        start += 1
    while end > start and value[end - 1] <= " ":
        end -= 1
    return value[start:end]


def _utf8(text: str) -> bytes:
    # surrogatepass: a lone surrogate (valid in JSON) must not raise, whose message
    # would quote the offending character of the password.
    return text.encode("utf-8", "surrogatepass")


@USER_AUTH_SCHEMES.register
class EmailPasswordAuthData(UserAuthData):
    """``{"email": string, "password": string}``, sent untrimmed; never printed."""

    scheme: ClassVar[str] = "EMAIL_PASSWORD"

    def __init__(self, email: str, password: str) -> None:
        self.email = email
        self.password = password

    def authdata(self) -> Mapping[str, Any]:
        return {KEY_EMAIL: self.email, KEY_PASSWORD: self.password}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext, master_token: MasterToken | None) -> Self:
        return cls(authdata.get_string(KEY_EMAIL), authdata.get_string(KEY_PASSWORD))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, EmailPasswordAuthData)
            and hmac.compare_digest(_utf8(other.email), _utf8(self.email))
            and hmac.compare_digest(_utf8(other.password), _utf8(self.password))
        )

    def __hash__(self) -> int:
        return hash((self.scheme, self.email))


class EmailPasswordStore(Protocol):
    """Users by email and password (the reference's EmailPasswordStore)."""

    def is_user(self, email: str, password: str) -> MslUser | None:
        """The user with these (already trimmed) credentials, or None."""
        ...


def _password_digest(password: str) -> bytes:
    return hashlib.sha256(_utf8(password)).digest()


class InMemoryEmailPasswordStore:
    """Users in a dictionary; passwords compared in constant time.

    Only the SHA-256 of each password's UTF-8 bytes is kept, and the check compares
    32-byte digests with :func:`hmac.compare_digest`, so neither the password nor its
    length shows in the timing; an unknown email costs the same comparison.
    """

    _DUMMY = b"\x00" * 32

    def __init__(self) -> None:
        self._users: dict[str, tuple[bytes, MslUser]] = {}
        self._lock = threading.Lock()

    def add(self, email: str, password: str, user: MslUser | str | None = None) -> None:
        """Register a user (``user`` defaults to the email)."""
        if user is None:
            user = email
        if isinstance(user, str):
            user = MslUser(user)
        with self._lock:
            self._users[email] = (_password_digest(password), user)

    def remove(self, email: str) -> None:
        """Forget a user."""
        with self._lock:
            self._users.pop(email, None)

    def is_user(self, email: str, password: str) -> MslUser | None:
        """The user with these (already trimmed) credentials, or None."""
        with self._lock:
            entry = self._users.get(email)
        given = _password_digest(password)
        if entry is None:
            hmac.compare_digest(given, self._DUMMY)  # keep the timing of a known email
            return None
        return entry[1] if hmac.compare_digest(given, entry[0]) else None


class EmailPasswordAuthFactory(UserAuthFactory):
    """Authenticates against an :class:`EmailPasswordStore`, checks in the spec's order."""

    scheme: ClassVar[str] = EmailPasswordAuthData.scheme

    def __init__(self, store: EmailPasswordStore) -> None:
        self.store = store

    def authenticate(
        self,
        ctx: MslContext,
        entity_identity: str,
        data: UserAuthData,
        user_id_token: UserIdToken | None,
    ) -> MslUser:
        uad = expect_data(data, EmailPasswordAuthData)
        check_permitted(ctx, entity_identity, self.scheme, uad)
        email = java_trim(uad.email)
        password = java_trim(uad.password)
        if not email or not password:
            raise MslUserAuthException(MslError.EMAILPASSWORD_BLANK).set_user_auth_data(uad)
        user = self.store.is_user(email, password)
        if user is None:
            raise MslUserAuthException(MslError.EMAILPASSWORD_INCORRECT).set_user_auth_data(uad)
        check_permitted(ctx, entity_identity, self.scheme, uad, user)
        check_user_id_token_user(user, user_id_token, uad)
        return user

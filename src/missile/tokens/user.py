"""The MSL user: who a user ID token identifies (tokens.md §2, userauth.md).

A user is encoded into a user ID token's ``userdata.identity`` as a string; the issuer
reconstructs it with a :data:`UserFactory`. The default user is just that string.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class MslUser:
    """An authenticated user, identified by a non-empty string."""

    identity: str

    def encode(self) -> str:
        """The string stored in a user ID token."""
        return self.identity

    def __str__(self) -> str:
        return self.identity


#: Turns the ``identity`` string of a user ID token back into a user; may raise.
UserFactory = Callable[[str], MslUser]


def default_user_factory(identity: str) -> MslUser:
    """Reconstruct the default :class:`MslUser` from its encoding."""
    return MslUser(identity)

"""Per-message choices: the options object the engine reads (control.md §2.3 MessageContext)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from missile.crypto.context import CryptoContext
from missile.errors import ResponseCode
from missile.tokens.service import ServiceToken
from missile.tokens.user import MslUser
from missile.userauth.base import UserAuthData

__all__ = ["MessageOptions", "UserAuthProvider"]

#: Returns user authentication data for a reauth code (None on first use); None gives up.
UserAuthProvider = Callable[[ResponseCode | None], UserAuthData | None]


@dataclass
class MessageOptions:
    """How one application message must be protected and what it carries.

    The defaults are the secure choice: encrypted and integrity protected.
    """

    encrypted: bool = True
    """Application data must be encrypted."""
    integrity_protected: bool = True
    """Application data must be integrity protected."""
    non_replayable: bool = False
    """The message must be non-replayable (needs a master token)."""
    requesting_tokens: bool = False
    """Ask for a master token (and a user ID token for ``user_id``) even if not needed."""
    user_id: str | None = None
    """Local name of the user this message is for (selects the stored user ID token)."""
    user_auth: UserAuthData | UserAuthProvider | None = None
    """User credentials, or a callable producing them (asked again after user reauth codes)."""
    user: MslUser | None = None
    """Servers: the user to issue a user ID token for in the response."""
    service_tokens: Sequence[ServiceToken] = ()
    """Service tokens to send in addition to the stored ones (replacing equal keys)."""
    service_token_contexts: Mapping[str, CryptoContext] = field(default_factory=dict)
    """Crypto contexts to open received service tokens, by name ("" is the default)."""
    expected_remote_identity: str | None = None
    """When set, a response's entity authentication identity must match."""
    user_message: str | None = None
    """Servers: user-facing text for error responses."""

    def user_auth_data(self, code: ResponseCode | None) -> UserAuthData | None:
        """The user authentication data to send, asking the provider when there is one."""
        if self.user_auth is None or isinstance(self.user_auth, UserAuthData):
            return self.user_auth if code is None else None
        return self.user_auth(code)

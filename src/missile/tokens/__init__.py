"""Master tokens, user ID tokens and service tokens."""

from missile.tokens.master import MasterToken
from missile.tokens.service import ServiceToken, select_crypto_context
from missile.tokens.user import MslUser, UserFactory, default_user_factory
from missile.tokens.user_id import UserIdToken

__all__ = [
    "MasterToken",
    "MslUser",
    "ServiceToken",
    "UserFactory",
    "UserIdToken",
    "default_user_factory",
    "select_crypto_context",
]

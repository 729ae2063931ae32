"""missile: the Message Security Layer (MSL) for Python.

The names here are the front door: :class:`Server` (routes, an ASGI application),
:class:`AsyncClient` and its blocking twin :class:`Client`, :class:`Peer` (peer-to-peer
over TCP), what a handler receives and returns (:class:`Request`, :class:`Reply`), what
a call returns (:class:`Response`), user credentials (:class:`EmailPassword`), key files
(:class:`KeyFile`) and the errors to catch. The layered modules (:mod:`missile.engine`, :mod:`missile.messages`,
:mod:`missile.transport`, :mod:`missile.stores`...) stay public for everything else.
"""

from missile._setup import ConfigError
from missile.client import AsyncClient, Client, EmailPassword
from missile.engine.client import Response, StreamingResponse
from missile.engine.errors import MslErrorResponse
from missile.engine.server import Reply, Request, RequestRejected
from missile.errors import MslError, MslException, ResponseCode
from missile.keyfile import KeyFile
from missile.peer import Peer
from missile.server import Server

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "ConfigError",
    "EmailPassword",
    "KeyFile",
    "MslError",
    "MslErrorResponse",
    "MslException",
    "Peer",
    "Reply",
    "Request",
    "RequestRejected",
    "Response",
    "ResponseCode",
    "Server",
    "StreamingResponse",
    "__version__",
]

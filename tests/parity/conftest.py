"""Fixtures of the parity tests: the message-layer fixtures (a pinned clock, the vector-01
server, a PSK client and an established session) are shared with tests/messages."""

from __future__ import annotations

from messages.conftest import client, clock, server, session

__all__ = ["client", "clock", "server", "session"]

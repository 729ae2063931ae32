"""Fixtures for the persistent state tests (the redis server itself is in tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex}:"

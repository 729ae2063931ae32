"""Fixtures of the observer tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def missile_logger() -> Iterator[logging.Logger]:
    """The ``missile`` logger alone (no propagation to pytest's handlers), at DEBUG.
    Tests set its handlers themselves: pytest may add its capturing handlers after this."""
    log = logging.getLogger("missile")
    saved = (log.level, log.propagate, log.handlers[:])
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.handlers[:] = []
    yield log
    for handler in log.handlers:
        handler.close()
    log.setLevel(saved[0])
    log.propagate = saved[1]
    log.handlers[:] = saved[2]

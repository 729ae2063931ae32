"""MSL integer identifiers: range and wraparound (encoding.md §6)."""

from __future__ import annotations

from missile.errors import MslInternalException

#: The largest value of every MSL identifier (2^53, JavaScript-safe).
MAX_LONG_VALUE = 2**53


def in_range(value: int) -> bool:
    """True when ``value`` is a valid identifier (0 … 2^53 inclusive)."""
    return 0 <= value <= MAX_LONG_VALUE


def next_id(value: int) -> int:
    """The identifier after ``value``: 2^53 wraps to 0; ``value`` must be in range."""
    if not 0 <= value <= MAX_LONG_VALUE:
        raise MslInternalException(f"identifier {value} out of range")
    return 0 if value == MAX_LONG_VALUE else value + 1


def previous_id(value: int) -> int:
    """The identifier before ``value``: 0 wraps to 2^53; ``value`` must be in range."""
    if not 0 <= value <= MAX_LONG_VALUE:
        raise MslInternalException(f"identifier {value} out of range")
    return MAX_LONG_VALUE if value == 0 else value - 1

"""Tests for missile.encoding.ids (encoding.md §6)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from missile.encoding.ids import MAX_LONG_VALUE, in_range, next_id, previous_id

_ids = st.integers(min_value=0, max_value=MAX_LONG_VALUE)


def test_max_long_value() -> None:
    assert MAX_LONG_VALUE == 9007199254740992 == 2**53


@pytest.mark.parametrize(
    ("value", "nxt"),
    [(0, 1), (1, 2), (41, 42), (MAX_LONG_VALUE - 1, MAX_LONG_VALUE), (MAX_LONG_VALUE, 0)],
)
def test_next_id(value: int, nxt: int) -> None:
    assert next_id(value) == nxt


@pytest.mark.parametrize(
    ("value", "prev"),
    [(1, 0), (2, 1), (42, 41), (MAX_LONG_VALUE, MAX_LONG_VALUE - 1), (0, MAX_LONG_VALUE)],
)
def test_previous_id(value: int, prev: int) -> None:
    assert previous_id(value) == prev


@pytest.mark.parametrize("value", [0, 1, 2**32, 2**52, MAX_LONG_VALUE - 1, MAX_LONG_VALUE])
def test_in_range_true(value: int) -> None:
    assert in_range(value)


@pytest.mark.parametrize("value", [-1, -(2**53), MAX_LONG_VALUE + 1, 2**63 - 1, 2**64, -(2**63)])
def test_in_range_false(value: int) -> None:
    assert not in_range(value)


@given(_ids)
def test_next_and_previous_are_inverse(value: int) -> None:
    assert previous_id(next_id(value)) == value
    assert next_id(previous_id(value)) == value


@given(_ids)
def test_results_stay_in_range(value: int) -> None:
    assert in_range(next_id(value))
    assert in_range(previous_id(value))


@given(_ids)
def test_next_is_increment_modulo(value: int) -> None:
    assert next_id(value) == (value + 1) % (MAX_LONG_VALUE + 1)
    assert previous_id(value) == (value - 1) % (MAX_LONG_VALUE + 1)


def test_full_cycle_near_the_top() -> None:
    v = MAX_LONG_VALUE - 2
    seen = []
    for _ in range(5):
        v = next_id(v)
        seen.append(v)
    assert seen == [MAX_LONG_VALUE - 1, MAX_LONG_VALUE, 0, 1, 2]

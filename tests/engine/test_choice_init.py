"""The written-out ``__init__`` of the values built for every message matches their fields.

:class:`Held`, :class:`Needs`, :class:`State`, :class:`Decision` (engine/choice.py) and
the client's plan (engine/client.py) are frozen dataclasses whose ``__init__`` fills the
instance dictionary at once instead of being generated; a field added without its
parameter, or a default that drifted, would make them differ from a generated dataclass.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from missile.engine.choice import FIRST_ATTEMPT, Attempt, Decision, Held, Needs, Protection, State
from missile.engine.client import _Plan

WRITTEN_OUT: list[type] = [Held, Needs, State, Decision, _Plan]

EXAMPLES: list[tuple[type, tuple[Any, ...], dict[str, Any]]] = [
    (Held, ("mt",), {"expired": True}),
    (Needs, (), {"user": True, "empty": True}),
    (State, (Held("mt"), None, Protection(True, False)), {"key_exchange": True}),
    (Decision, ("mt", "uit", True, False, True), {"handshake": False}),
    (_Plan, (3, None, None, None, True, False), {"key_request_data": []}),
]


def _expected_parameters(cls: type) -> list[tuple[str, object]]:
    return [
        (f.name, inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
        for f in dataclasses.fields(cls)
    ]


@pytest.mark.parametrize("cls", WRITTEN_OUT)
def test_init_parameters_are_the_fields_with_their_defaults(cls: type) -> None:
    params = list(inspect.signature(cls).parameters.values())
    assert [(p.name, p.default) for p in params] == _expected_parameters(cls)
    assert all(f.default_factory is dataclasses.MISSING for f in dataclasses.fields(cls))


@pytest.mark.parametrize(("cls", "args", "kwargs"), EXAMPLES)
def test_behaves_like_a_generated_dataclass(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    value = cls(*args, **kwargs)
    names = [f.name for f in dataclasses.fields(cls)]
    assert vars(value) == {name: getattr(value, name) for name in names}
    by_name = cls(**dict(zip(names, args, strict=False)), **kwargs)
    assert value == by_name
    assert dataclasses.replace(value) == value
    assert repr(value) == repr(by_name) and repr(value).startswith(f"{cls.__name__}(")
    first = names[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, first, None)
    with pytest.raises(TypeError):
        cls(*args, bogus=1, **kwargs)
    if cls is not _Plan:  # the plan holds a list: equal, not hashable, as before
        assert hash(value) == hash(by_name)


def test_defaults_match_the_documented_ones() -> None:
    assert Held("t") == Held("t", renewable=False, expired=False)
    assert Needs() == Needs(True, True, False, False, False, False)
    with pytest.raises(TypeError):
        State(None, None, None)  # type: ignore[call-arg]


def test_first_attempt_is_a_plain_attempt() -> None:
    assert Attempt() == FIRST_ATTEMPT
    assert vars(FIRST_ATTEMPT) == vars(Attempt())

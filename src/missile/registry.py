"""Scheme registries: wire name -> implementation class.

Each kind of scheme (entity authentication, user authentication, key exchange) has one
registry. Built-in schemes register exactly as an application's own scheme would:
decorate the class with ``@REGISTRY.register``; the class names its wire string in a
``scheme`` class attribute. Looking up an unknown name raises the kind's MslError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from missile.errors import MslError, MslException

__all__ = ["SchemeRegistry"]

T = TypeVar("T")


class SchemeRegistry(Generic[T]):
    """A mapping from scheme wire name to the class implementing it."""

    def __init__(self, kind: str, unknown: MslError, exception: type[MslException] = MslException) -> None:
        self.kind = kind
        self._unknown = unknown
        self._exception = exception
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Register ``cls`` under its ``scheme`` attribute (usable as a class decorator)."""
        name = getattr(cls, "scheme", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__name__} has no 'scheme' name")
        existing = self._classes.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"{self.kind} scheme {name!r} is already registered to {existing.__name__}")
        self._classes[name] = cls
        return cls

    def unregister(self, name: str) -> None:
        """Remove a scheme (mainly for tests of custom schemes)."""
        self._classes.pop(name, None)

    def get(self, name: str) -> type[T]:
        """The class for ``name``; unknown names raise the kind's MslError."""
        try:
            return self._classes[name]
        except KeyError:
            raise self._exception(self._unknown, f"{self.kind} scheme {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def names(self) -> list[str]:
        """Registered wire names."""
        return list(self._classes)

    def decorator(self) -> Callable[[type[T]], type[T]]:
        """The :meth:`register` method, for symmetry with other registries."""
        return self.register

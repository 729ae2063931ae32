"""Helpers to read the Java-generated wire vectors in tests/vectors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


class FixedRandom:
    """A deterministic RandomSource for tests (counter-based, never for production)."""

    def __init__(self, seed: int = 0) -> None:
        self._counter = seed

    def random_bytes(self, n: int) -> bytes:
        out = bytes((self._counter + i) & 0xFF for i in range(n))
        self._counter += 1
        return out


def load(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return result


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def wire_objects(vector: dict[str, Any]) -> list[dict[str, Any]]:
    """Split the concatenated JSON objects of ``message_b64``."""
    text = b64(vector["message_b64"]).decode("utf-8")
    decoder = json.JSONDecoder()
    objects: list[dict[str, Any]] = []
    pos = 0
    while pos < len(text):
        obj, pos = decoder.raw_decode(text, pos)
        objects.append(obj)
    return objects


def keydata(vector: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = vector["expected"]["header"]["keyresponsedata"]["keydata"]
    return result

"""Access to the shared Java-reference vectors copied verbatim into tests/vectors."""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path
from typing import Any

VECTOR_DIR = Path(__file__).parent / "vectors"


def stems(lo: int = 1, hi: int = 99) -> list[str]:
    """Vector file stems whose number is in ``lo..hi``."""
    out = []
    for p in sorted(VECTOR_DIR.glob("[0-9][0-9]_*.json")):
        if lo <= int(p.name[:2]) <= hi:
            out.append(p.stem)
    return out


@cache
def _load(stem: str) -> str:
    return (VECTOR_DIR / f"{stem}.json").read_text(encoding="utf-8")


def load(stem: str) -> dict[str, Any]:
    """A fresh copy of one vector."""
    data: dict[str, Any] = json.loads(_load(stem))
    return data


def b64(value: str) -> bytes:
    return base64.b64decode(value)

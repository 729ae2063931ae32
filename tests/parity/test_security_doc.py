"""docs/security.md names only tests that exist: every ``path::test`` it cites (a bare
``::test`` continues the path cited before it on the same line) is a test function."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?::(\w+)`")


def _references() -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    for number, line in enumerate(DOC.read_text(encoding="utf-8").splitlines(), 1):
        path: str | None = None
        for match in REFERENCE.finditer(line):
            path = match.group(1) or path
            assert path is not None, f"line {number}: '::{match.group(2)}' without a path before it"
            refs.add((path, match.group(2)))
    return refs


def test_cited_tests_exist() -> None:
    refs = _references()
    assert len(refs) > 100
    missing = []
    for path, name in sorted(refs):
        file = ROOT / path
        if not file.is_file() or not re.search(rf"^(async )?def {name}\(", file.read_text(encoding="utf-8"), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, missing

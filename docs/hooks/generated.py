"""MkDocs hook: pages generated from the code at build time.

``<!-- generated:error-table -->`` in a page becomes the table of every
:class:`missile.errors.MslError` (name, code, wire internal code, response code,
description), read from ``src/missile/errors.py`` itself, so the published table can
never drift from the code.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- generated:error-table -->"


def error_table() -> str:
    """The Markdown table of every MslError, in the order of errors.py."""
    from missile.errors import MslError

    rows = ["| error | code | internalcode | response code | description |", "|---|---:|---:|---|---|"]
    for error in MslError:
        text = error.message.replace("|", "\\|")
        rows.append(
            f"| `{error.name}` | {error.code} | {error.internal_code} | {error.response_code.name} | {text} |"
        )
    return "\n".join(rows)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace the generation markers of a page."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, error_table())
    return markdown

"""Byte-level edits for property tests that compare a fast path with the general one on
damaged input: where an edit lands, what it does (replace, insert, delete), and the
bytes it uses."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

Edit = tuple[int, str, bytes]


def edits(blobs: Sequence[bytes] = ()) -> st.SearchStrategy[Edit]:
    """One edit: a position (wrapped to the data's length), a kind, and one or two random
    bytes or one of ``blobs`` (bytes that matter to the format under test)."""
    data = st.binary(min_size=1, max_size=2)
    if blobs:
        data = data | st.sampled_from(list(blobs))
    return st.tuples(st.integers(0, 10**6), st.sampled_from(["replace", "insert", "delete"]), data)


def apply_edit(out: bytearray, pos: int, kind: str, blob: bytes) -> None:
    """Replace, insert or delete (``kind``) ``blob``'s length of bytes at ``pos``, in place."""
    if kind == "replace":
        out[pos : pos + len(blob)] = blob
    elif kind == "insert":
        out[pos:pos] = blob
    else:
        del out[pos : pos + len(blob)]


def edited(data: bytes, changes: Sequence[Edit]) -> bytes:
    """``data`` with ``changes`` applied in order."""
    out = bytearray(data)
    for where, kind, blob in changes:
        apply_edit(out, where % (len(out) + 1), kind, blob)
    return bytes(out)

"""Bounds on everything a peer controls in a received message.

MSL itself bounds nothing: a hostile peer could send a header of gigabytes, thousands of
service tokens, a token of megabytes, endless tiny chunks or a decompression bomb. Every
reader applies a :class:`ReaderLimits`; the defaults admit any message the reference
produces in practice and stop the rest early, before the expensive work (decryption,
signature checks, inflation) for the offending part is done.
"""

from __future__ import annotations

from dataclasses import dataclass

from missile.encoding.mslobject import MslObject
from missile.errors import MslError, MslMessageException

__all__ = ["DEFAULT_LIMITS", "ReaderLimits", "check_token_size"]


@dataclass(frozen=True)
class ReaderLimits:
    """Bounds on what a peer can make a reader buffer, verify or inflate.

    Header objects are small in practice (a few KiB even with many service tokens);
    1 MiB leaves ample room, like HTTP servers' header limits. A payload chunk carrying
    1 MiB of data is about 2.4 MiB encoded (base64 nested three times), so 16 MiB admits
    chunks of ~6 MiB. Decompressed chunk data is capped at 64 MiB in addition to the
    context's deflate ratio (``MslContext.max_deflate_ratio``). Exceeding a size or count
    limit of the header is MSL_PARSE_ERROR; of the message as a whole, MESSAGE_FORMAT_ERROR.
    """

    max_header_size: int = 1024 * 1024
    """Largest encoded header (or error header) object, in bytes."""
    max_token_size: int = 128 * 1024
    """Largest encoded token (master, user ID or service token: ``tokendata`` plus
    ``signature``), in bytes. Real master and user ID tokens are under 2 KiB."""
    max_service_tokens: int = 256
    """Most service tokens in one header (and again for the peer's service tokens)."""
    max_key_requests: int = 16
    """Most key request data entries in one header."""
    max_chunk_size: int = 16 * 1024 * 1024
    """Largest encoded payload chunk object, in bytes."""
    max_chunk_data_size: int = 64 * 1024 * 1024
    """Largest decompressed data of one chunk, in bytes."""
    max_chunks: int = 1024 * 1024
    """Most payload chunks in one message."""
    max_message_size: int = 4 * 1024 * 1024 * 1024
    """Largest encoded message (header and all chunks), in bytes. Payloads stream
    through the reader, so this bounds time rather than memory."""


DEFAULT_LIMITS = ReaderLimits()
"""The default limits."""


def check_token_size(obj: MslObject, limits: ReaderLimits, what: str) -> None:
    """MSL_PARSE_ERROR when the token object ``obj`` is larger than ``limits`` allow."""
    size = obj.string_size()
    if size > limits.max_token_size:
        raise MslMessageException(
            MslError.MSL_PARSE_ERROR, f"{what} of {size} bytes exceeds the limit of {limits.max_token_size}"
        )

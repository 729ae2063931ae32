"""Payload and service-token compression (encoding.md §8).

Two algorithms are defined, in preference order: ``GZIP`` (an RFC 1952 stream, §8.3) and
``LZW`` (the MSL-specific variant of §8.2, which is neither Unix ``compress`` nor GIF LZW).

Compression output is kept only when strictly shorter than the input (§8.1). Decompression
is bounded: output may not exceed ``max_ratio`` times the compressed length (default 200,
as in the reference), and an optional absolute ``max_size``. Every decoding failure,
including a breached limit, raises :class:`MslEncodingException` with
``MslError.UNCOMPRESSION_ERROR``; the limits are enforced while output is produced, so a
decompression bomb never materialises beyond the cap.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from enum import Enum

from missile.errors import MslEncodingException, MslError

__all__ = [
    "DEFAULT_MAX_DEFLATE_RATIO",
    "CompressionAlgorithm",
    "choose_algorithm",
    "compress",
    "decompress",
    "lzw_compress",
    "lzw_decompress",
]

DEFAULT_MAX_DEFLATE_RATIO = 200
"""Default ceiling on ``uncompressed / compressed`` length (encoding.md §8.1)."""

_GZIP_MAGIC = b"\x1f\x8b"
# zlib window bits selecting the gzip container (header + CRC-32/ISIZE trailer).
_GZIP_WBITS = 31
# Bits buffered by the LZW packer before whole bytes are moved to the output.
_LZW_FLUSH_BITS = 512


class CompressionAlgorithm(str, Enum):
    """Compression algorithm wire names, declared in preference order (§8)."""

    GZIP = "GZIP"
    LZW = "LZW"

    @classmethod
    def from_wire(cls, name: str) -> CompressionAlgorithm:
        """Parse a ``compressionalgo`` wire string (case-sensitive, as in Java ``valueOf``).

        Raises :class:`MslEncodingException` (``UNIDENTIFIED_COMPRESSION``) for unknown names.
        """
        if isinstance(name, str):
            try:
                return cls(name)
            except ValueError:
                pass
        raise MslEncodingException(MslError.UNIDENTIFIED_COMPRESSION, repr(name))


def _coerce(algo: CompressionAlgorithm | str) -> CompressionAlgorithm:
    return algo if isinstance(algo, CompressionAlgorithm) else CompressionAlgorithm.from_wire(algo)


#: Preference order (iterating the enum itself is slow on a per-message path).
_PREFERENCE: tuple[CompressionAlgorithm, ...] = tuple(CompressionAlgorithm)


def choose_algorithm(offered: Iterable[CompressionAlgorithm | str]) -> CompressionAlgorithm | None:
    """Return the most preferred algorithm in ``offered`` (GZIP before LZW), or ``None``.

    Unknown names are ignored (§8.1, payload chunk algorithm choice).
    """
    present: set[CompressionAlgorithm] = set()
    for item in offered:
        if isinstance(item, CompressionAlgorithm):
            present.add(item)
        elif isinstance(item, str):
            try:
                present.add(CompressionAlgorithm(item))
            except ValueError:
                continue
    if not present:
        return None
    for algo in _PREFERENCE:
        if algo in present:
            return algo
    return None  # pragma: no cover - every member is in _PREFERENCE


def compress(algo: CompressionAlgorithm | str, data: bytes) -> bytes | None:
    """Compress ``data``; ``None`` if it is empty or the result is not strictly shorter (§8.1)."""
    algo = _coerce(algo)
    if not data:
        return None
    if algo is CompressionAlgorithm.GZIP:
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, _GZIP_WBITS)
        out = compressor.compress(data) + compressor.flush()
    else:
        out = lzw_compress(data)
    return out if len(out) < len(data) else None


def decompress(
    algo: CompressionAlgorithm | str,
    data: bytes,
    *,
    max_ratio: int = DEFAULT_MAX_DEFLATE_RATIO,
    max_size: int | None = None,
) -> bytes:
    """Decompress ``data`` with at most ``max_ratio * len(data)`` (and ``max_size``) output bytes.

    Exceeding a limit or malformed input raises :class:`MslEncodingException`
    (``UNCOMPRESSION_ERROR``); ``max_ratio < 1`` or a negative ``max_size`` is a
    programming error (:class:`ValueError`), as in the reference's ``setMaxDeflateRatio``.
    """
    algo = _coerce(algo)
    if max_ratio < 1:
        raise ValueError("the maximum deflate ratio must be at least one")
    if max_size is not None and max_size < 0:
        raise ValueError("max_size must not be negative")
    cap = max_ratio * len(data)
    if max_size is not None:
        cap = min(cap, max_size)
    if algo is CompressionAlgorithm.GZIP:
        return _gunzip(data, cap)
    return lzw_decompress(data, cap)


def _uncompression_error(detail: str, cause: BaseException | None = None) -> MslEncodingException:
    return MslEncodingException(MslError.UNCOMPRESSION_ERROR, detail, cause=cause)


def _gunzip(data: bytes, cap: int) -> bytes:
    """Inflate one or more concatenated gzip members, never holding more than ``cap`` + 1 bytes.

    As with ``java.util.zip.GZIPInputStream``, bytes after a member that do not begin with
    the gzip magic are ignored; a following member must be complete and valid (§8.3).
    """
    if not data.startswith(_GZIP_MAGIC):
        raise _uncompression_error("GZIP: missing gzip header")
    out = bytearray()
    pending: bytes = data
    try:
        while True:
            inflater = zlib.decompressobj(_GZIP_WBITS)
            while not inflater.eof:
                # max_length 0 would mean "unlimited"; room + 1 >= 1 always, and asking
                # for one byte beyond the cap is enough to detect a breach.
                chunk = inflater.decompress(pending, cap - len(out) + 1)
                out += chunk
                if len(out) > cap:
                    raise _uncompression_error(f"GZIP: output exceeds limit of {cap} bytes")
                tail = inflater.unconsumed_tail
                if not chunk and len(tail) == len(pending):
                    raise _uncompression_error("GZIP: truncated stream")
                pending = tail
            pending = inflater.unused_data
            if not pending.startswith(_GZIP_MAGIC):
                return bytes(out)
    except zlib.error as e:
        raise _uncompression_error(f"GZIP: {e}", e) from e


def lzw_compress(data: bytes) -> bytes:
    """Compress with the MSL LZW variant (encoding.md §8.2); empty input gives empty output.

    The dictionary maps ``prefix_code << 8 | byte`` to a code, avoiding byte-string keys.
    Codes are packed MSB-first into an integer accumulator flushed in batches.
    """
    if not data:
        return b""
    table: dict[int, int] = {}
    next_code = 256
    width = 8
    acc = 0
    nbits = 0
    get = table.get
    out = bytearray()
    w = data[0]
    for c in data[1:]:
        key = (w << 8) | c
        code = get(key)
        if code is not None:
            w = code
            continue
        acc = (acc << width) | w
        nbits += width
        if nbits >= _LZW_FLUSH_BITS:
            spare = nbits & 7
            out += (acc >> spare).to_bytes(nbits >> 3, "big")
            acc &= (1 << spare) - 1
            nbits = spare
        if next_code >> width:
            width += 1
        table[key] = next_code
        next_code += 1
        w = c
    acc = (acc << width) | w
    nbits += width
    pad = -nbits & 7
    out += (acc << pad).to_bytes((nbits + pad) >> 3, "big")
    return bytes(out)


def lzw_decompress(data: bytes, max_size: int) -> bytes:
    """Decompress MSL LZW data (encoding.md §8.2), producing at most ``max_size`` bytes.

    Trailing bits fewer than the current code width are padding. A code beyond the next
    dictionary index, or output longer than ``max_size``, raises
    :class:`MslEncodingException` (``UNCOMPRESSION_ERROR``).
    """
    if max_size < 0:
        raise ValueError("max_size must not be negative")
    if not data:
        return b""
    # The first code is 8 bits wide, i.e. exactly the first byte.
    prev = data[:1]
    if max_size < 1:
        raise _uncompression_error(f"LZW: output exceeds limit of {max_size} bytes")
    table: list[bytes] = [bytes((i,)) for i in range(256)]
    add = table.append
    size = 256
    width = 9
    limit = 1 << width
    out = bytearray(prev)
    produced = 1
    total = len(data)
    pos = 1
    acc = 0
    nbits = 0
    while True:
        while nbits < width:
            if pos >= total:
                return bytes(out)
            end = pos + 8
            chunk = data[pos:end]
            acc = (acc << (len(chunk) << 3)) | int.from_bytes(chunk, "big")
            nbits += len(chunk) << 3
            pos = end
        nbits -= width
        code = acc >> nbits
        acc &= (1 << nbits) - 1
        if code < size:
            entry = table[code]
            add(prev + entry[:1])
        elif code == size:
            entry = prev + prev[:1]
            add(entry)
        else:
            raise _uncompression_error(f"LZW: invalid code {code} (dictionary size {size})")
        size += 1
        if size == limit:
            width += 1
            limit <<= 1
        produced += len(entry)
        if produced > max_size:
            raise _uncompression_error(f"LZW: output exceeds limit of {max_size} bytes")
        out += entry
        prev = entry

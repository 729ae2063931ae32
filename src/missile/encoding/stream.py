"""Incremental decoding of a stream of concatenated JSON objects (encoding.md §4).

An MSL message is a header object followed by payload-chunk objects with nothing in
between and no length prefix. :class:`ObjectStreamDecoder` accepts bytes in any split
and hands out one complete object at a time, exactly as received (its bytes are what
signatures cover), never consuming past the end of the object it returns: bytes that
follow stay buffered for the next call or for the caller to take back.

The scan is resumable and linear: it only tracks brace depth and string state, jumping
between structural characters with compiled regular expressions, so a 1 MiB payload
chunk that is mostly one base64 string costs a couple of C-level searches. JSON
validity is checked afterwards by :func:`~missile.encoding.codec.decode`.

Payload chunks are not decoded here at all: their codec
(:mod:`missile.crypto.chunks`) reads the exact bytes in one pass, so an object of
exactly the chunk's shape (``payload`` and ``signature`` strings, or byte strings) is
framed by that shape and handed out as a :class:`~missile.encoding.mslobject.LazyMslObject`,
whose values are decoded only if something reads them. Small objects of any other shape
(headers) are parsed in one pass where they start, larger ones scanned then parsed; in
the binary format the strict decoder frames the object as it decodes it (where it ends
is where its map ends), so a header is read once, not framed and then decoded. Whenever
a shortcut does not work out (incomplete, malformed, too large) the framing path
decides, as always: the shortcuts change the cost, never the result (property-tested).
"""

from __future__ import annotations

import re

from missile.encoding import cbor
from missile.encoding.codec import decode, decode_at
from missile.encoding.mslobject import BinaryMslObject, LazyBinaryMslObject, LazyMslObject, MslObject
from missile.errors import MslEncodingException, MslError

__all__ = ["DEFAULT_MAX_OBJECT_SIZE", "ObjectStreamDecoder"]

#: Default cap on one encoded object. A payload chunk carrying 1 MiB of application
#: data is about 2.4 MiB once base64 is nested three times (data, ciphertext,
#: envelope); 16 MiB leaves room for chunks up to ~6 MiB while bounding what a peer
#: can make us buffer before anything is authenticated.
DEFAULT_MAX_OBJECT_SIZE = 16 * 1024 * 1024

#: Buffered data up to this size is first parsed directly (one pass finds the object's
#: end and decodes it); larger data is scanned for the end first, so long base64
#: values stay undecoded views into the received bytes.
_DIRECT_LIMIT = 8192

_STRUCTURAL = re.compile(rb'[{}"]')
_NON_WS = re.compile(rb"[^ \t\r\n]")


class ObjectStreamDecoder:
    """Split a byte stream into encoded JSON objects, one at a time."""

    def __init__(self, *, max_object_size: int = DEFAULT_MAX_OBJECT_SIZE) -> None:
        if max_object_size < 2:
            raise ValueError("max_object_size must be at least 2")
        self.max_object_size = max_object_size
        # Received data. Fed ``bytes`` are kept as they are while nothing else is
        # buffered, so a chunk that arrives whole is scanned and handed out without a
        # copy; a bytearray takes over as soon as pieces must be joined.
        self._buf: bytes | bytearray = b""
        self._base = 0  # start of unconsumed data in _buf
        self._start = -1  # start of the object being scanned, or -1 between objects
        self._pos = 0  # scan position
        self._depth = 0
        self._in_string = False
        self._need = 0  # bytes a binary object needs from its start before a rescan

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes."""
        if not data:
            return
        buf = self._buf
        if self._base >= len(buf) and self._start < 0 and type(data) is bytes:
            self._buf = data
            self._base = self._pos = 0
            return
        if type(buf) is bytes:
            joined = bytearray(buf[self._base :])
            self._pos -= self._base
            if self._start >= 0:
                self._start -= self._base
            self._base = 0
            self._buf = joined
        self._buf += data

    @property
    def buffered(self) -> int:
        """Number of unconsumed bytes held."""
        return len(self._buf) - self._base

    def has_pending_data(self) -> bool:
        """True when unconsumed bytes other than whitespace are held."""
        return _NON_WS.search(self._buf, self._base) is not None

    def take_remaining(self) -> bytes:
        """Remove and return every unconsumed byte (e.g. the start of the next message)."""
        rest = bytes(self._buf[self._base :])
        self._buf = b""
        self._base = self._pos = self._depth = 0
        self._start = -1
        self._in_string = False
        self._need = 0
        return rest

    def next_raw(self) -> bytes | None:
        """The exact bytes of the next complete object, or None if more data is needed."""
        buf = self._buf
        if self._start < 0:
            m = _NON_WS.search(buf, self._base)
            if m is None:
                # Whitespace between objects is tolerated but never accumulated.
                self._base = self._pos = len(buf)
                self._compact()
                return None
            if buf[m.start()] == cbor.IDENTIFIER:
                return self._next_binary(m.start())
            if buf[m.start()] != 0x7B:
                raise MslEncodingException(MslError.MSL_PARSE_ERROR, "stream data is not an MSL object")
            self._start = m.start()
            self._pos = self._start + 1
            self._depth = 1
            self._in_string = False
        end = self._scan()
        if end < 0:
            if len(buf) - self._start > self.max_object_size:
                raise MslEncodingException(
                    MslError.MSL_PARSE_ERROR, f"encoded object exceeds {self.max_object_size} bytes"
                )
            return None
        if end - self._start > self.max_object_size:
            raise MslEncodingException(MslError.MSL_PARSE_ERROR, f"encoded object exceeds {self.max_object_size} bytes")
        if type(buf) is bytes:
            raw = buf[self._start : end]  # the very object when the chunk arrived whole
        else:
            with memoryview(buf) as view:
                raw = bytes(view[self._start : end])  # one copy, not two
        self._base = self._pos = end
        self._start = -1
        self._compact()
        return raw

    def _next_binary(self, start: int) -> bytes | None:
        """The next binary-format object starting at ``start``, or None if incomplete."""
        buf = self._buf
        if len(buf) - start < self._need:
            return None
        try:
            end = cbor.item_end(buf, start + 1)
        except cbor.IncompleteItem as incomplete:
            self._need = incomplete.at_least - start
            self._check_size(self._need)
            return None
        self._need = 0
        self._check_size(end - start)
        with memoryview(buf) as view:
            raw = bytes(view[start:end])
        self._base = self._pos = end
        self._compact()
        return raw

    def _check_size(self, size: int) -> None:
        if size > self.max_object_size:
            raise MslEncodingException(MslError.MSL_PARSE_ERROR, f"encoded object exceeds {self.max_object_size} bytes")

    def next_object(self) -> tuple[bytes, MslObject] | None:
        """The next complete object as ``(raw bytes, decoded object)``, or None. A
        payload chunk's values are decoded only if read (:class:`LazyMslObject`): its
        codec reads the raw bytes."""
        buf = self._buf
        if self._start < 0:
            lazy: type[LazyMslObject] = LazyMslObject
            end = _json_chunk_end(buf, self._base)
            if end < 0:
                lazy = LazyBinaryMslObject
                end = _binary_chunk_end(buf, self._base)
            if 0 < end - self._base <= self.max_object_size:
                # Framed by its shape: no scan, no decoding.
                chunk = buf[self._base : end] if type(buf) is bytes else bytes(memoryview(buf)[self._base : end])
                self._base = self._pos = end
                self._need = 0
                self._compact()
                return chunk, lazy(chunk, _CHUNK_KEYS, decode)
            if type(buf) is bytes and len(buf) - self._base <= _DIRECT_LIMIT:
                direct = self._decode_directly(buf)
                if direct is not None:
                    return direct
        raw = self.next_raw()
        if raw is None:
            return None
        return raw, _decoded(raw)

    def _decode_directly(self, buf: bytes) -> tuple[bytes, MslObject] | None:
        """A small complete object parsed in one pass, or None when that does not work
        out (incomplete, malformed, non-ASCII): the scan then decides, as always."""
        m = _NON_WS.search(buf, self._base)
        if m is None:
            return None
        start = m.start()
        obj: MslObject
        try:
            if buf[start] == cbor.IDENTIFIER:
                # Decoding frames the object too: it ends where its map ends.
                value, end = cbor.decode_object_at(buf, start)
                obj = BinaryMslObject(value)
            elif buf[start] == 0x7B and buf.isascii():  # ASCII only: string and byte offsets must agree
                obj, end = decode_at(buf.decode("ascii"), start)
            else:
                return None
        except MslEncodingException:
            return None
        if end - start > self.max_object_size:
            return None
        self._base = self._pos = end
        self._need = 0
        self._compact()
        obj.encoded = buf[start:end]
        return obj.encoded, obj

    def _scan(self) -> int:
        buf = self._buf
        pos = self._pos
        depth = self._depth
        in_string = self._in_string
        end = -1
        n = len(buf)
        while True:
            if in_string:
                # One memchr-speed search per string: long base64 values (the bulk of
                # a payload chunk) are crossed at gigabytes per second. A quote ends
                # the string unless an odd run of backslashes escapes it.
                quote = buf.find(b'"', pos)
                if quote < 0:
                    pos = n
                    break
                slash = quote
                while buf[slash - 1] == 0x5C:
                    slash -= 1
                pos = quote + 1
                if (quote - slash) % 2 == 0:
                    in_string = False
            else:
                m = _STRUCTURAL.search(buf, pos)
                if m is None:
                    pos = n
                    break
                i = m.start()
                c = buf[i]
                pos = i + 1
                if c == 0x22:
                    in_string = True
                elif c == 0x7B:
                    depth += 1
                else:
                    depth -= 1
                    if depth == 0:
                        end = pos
                        break
        self._pos = pos
        self._depth = depth
        self._in_string = in_string
        return end

    def _compact(self) -> None:
        # Drop consumed bytes only when they dominate, keeping the cost amortised linear
        # even when a whole multi-megabyte message is fed at once.
        base = self._base
        buf = self._buf
        if base >= len(buf):
            self._buf = b""
            self._base = self._pos = 0
        elif base > 65536 and base * 2 > len(buf) and type(buf) is bytearray:
            del buf[:base]
            self._base = 0
            self._pos -= base


_JSON_CHUNK_HEAD = b'{"payload":"'
_JSON_CHUNK_MIDDLE = b'","signature":"'
_BINARY_CHUNK_HEAD = bytes((cbor.IDENTIFIER,)) + cbor.map_head(2) + cbor.encode_text("payload")
_BINARY_SIGNATURE = cbor.encode_text("signature")
_CHUNK_KEYS = ("payload", "signature")


def _decoded(raw: bytes) -> MslObject:
    """``raw`` decoded; lazily when it has exactly the shape of a payload chunk."""
    if _chunk_shaped(raw):
        return (
            LazyBinaryMslObject(raw, _CHUNK_KEYS, decode)
            if raw[0] == cbor.IDENTIFIER
            else LazyMslObject(raw, _CHUNK_KEYS, decode)
        )
    return decode(raw)


def _json_chunk_end(buf: bytes | bytearray, start: int) -> int:
    """The end of ``{"payload":"…","signature":"…"}`` at ``start`` (values without
    quotes), or -1 (another shape, or not all there yet)."""
    if not buf.startswith(_JSON_CHUNK_HEAD, start):
        return -1
    middle = buf.find(b'"', start + len(_JSON_CHUNK_HEAD))
    # Neither closing quote may follow a backslash (it might be escaped: no shape).
    if middle < 0 or buf[middle - 1] == 0x5C or not buf.startswith(_JSON_CHUNK_MIDDLE, middle):
        return -1
    last = buf.find(b'"', middle + len(_JSON_CHUNK_MIDDLE))
    if last < 0 or buf[last - 1] == 0x5C or not buf.startswith(b'"}', last):
        return -1
    return last + 2


def _binary_chunk_end(buf: bytes | bytearray, start: int) -> int:
    """The end of ``{"payload": h'…', "signature": h'…'}`` at ``start`` (its heads
    minimal), or -1 (another shape, or not all there yet)."""
    if not buf.startswith(_BINARY_CHUNK_HEAD, start):
        return -1
    head = cbor.minimal_head(buf, start + len(_BINARY_CHUNK_HEAD), 2)
    if head is None or not buf.startswith(_BINARY_SIGNATURE, head[0] + head[1]):
        return -1
    head = cbor.minimal_head(buf, head[0] + head[1] + len(_BINARY_SIGNATURE), 2)
    return head[0] + head[1] if head is not None and head[0] + head[1] <= len(buf) else -1


def _chunk_shaped(raw: bytes) -> bool:
    """True when ``raw`` is an object with exactly the members ``payload`` and
    ``signature`` holding strings (JSON) or byte strings (binary), if it is well formed
    at all (which decoding checks, when a value is read)."""
    if raw.startswith(_JSON_CHUNK_HEAD):
        return _json_chunk_end(raw, 0) == len(raw)
    if raw.startswith(_BINARY_CHUNK_HEAD):
        try:
            major, size, at = cbor.read_head(raw, len(_BINARY_CHUNK_HEAD))
            if major != 2 or not raw.startswith(_BINARY_SIGNATURE, at + size):
                return False
            major, size, at = cbor.read_head(raw, at + size + len(_BINARY_SIGNATURE))
        except MslEncodingException:
            return False
        return major == 2 and at + size == len(raw)
    return False

"""The sans-IO message writer (messages.md §10).

The header is encoded at construction; application data then goes out chunk by chunk.
:meth:`write` buffers at most one chunk (``chunk_size`` bytes) and emits full chunks as
they fill, :meth:`flush` emits what is buffered as a chunk, :meth:`close` emits the
final end-of-message chunk. Each method returns the bytes to send, so the caller
decides how they travel. Compression follows the header's capabilities and is used
only when it makes a chunk smaller. Chunks are written in the header's encoder format.
"""

from __future__ import annotations

from missile.crypto.context import CryptoContext
from missile.encoding.compression import CompressionAlgorithm
from missile.errors import MslError, MslInternalException, MslMessageException
from missile.messages.error_header import ErrorHeader
from missile.messages.header import MessageHeader
from missile.messages.payload import encode_chunk

__all__ = ["MessageWriter", "DEFAULT_CHUNK_SIZE"]

#: Default payload chunk size: large enough that per-chunk overhead (IV, MAC, JSON,
#: base64 framing) is negligible, small enough to keep memory flat while streaming.
DEFAULT_CHUNK_SIZE = 64 * 1024

_AUTO = object()


class MessageWriter:
    """Turn a header and application data into the bytes of one message."""

    def __init__(
        self,
        header: MessageHeader | ErrorHeader,
        payload_crypto_context: CryptoContext | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        compression: CompressionAlgorithm | object | None = _AUTO,
    ) -> None:
        """``compression`` defaults to the most preferred algorithm in the header's
        capabilities (messages.md §10); pass None to disable it."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.header = header
        self.chunk_size = chunk_size
        self._accepts_data = isinstance(header, MessageHeader) and not header.is_handshake
        if isinstance(header, MessageHeader):
            if payload_crypto_context is None:
                payload_crypto_context = header.crypto_context
            self._crypto: CryptoContext | None = payload_crypto_context
            self._message_id = header.message_id
            caps = header.data.capabilities
            self._allowed, preferred = caps.compression if caps is not None else (frozenset(), None)
        else:
            self._crypto = None
            self._message_id = header.message_id
            self._allowed, preferred = frozenset(), None
        if compression is _AUTO:
            self._compression = preferred
        else:
            self.set_compression(compression)  # type: ignore[arg-type]
        self._buffer = bytearray()
        self._sequence = 1
        self._closed = False
        self._format = header.encoder_format
        self._header_bytes = header.encode()

    def header_bytes(self) -> bytes:
        """The encoded header, to be sent first."""
        return self._header_bytes

    @property
    def closed(self) -> bool:
        """True once the end of the message has been written."""
        return self._closed

    @property
    def compression(self) -> CompressionAlgorithm | None:
        """The algorithm used for the next chunk."""
        return self._compression

    def set_compression(self, algo: CompressionAlgorithm | None) -> bytes:
        """Change compression for later chunks (only to one the header's capabilities list).

        Returns the bytes of a chunk emitted for data buffered under the old setting.
        """
        if algo is not None and algo not in self._allowed:
            raise MslInternalException(f"compression {algo.value} not in the header capabilities")
        out = b""
        if getattr(self, "_buffer", None) and algo != self._compression:
            out = self.flush()
        self._compression = algo
        return out

    def write(self, data: bytes | bytearray | memoryview) -> bytes:
        """Buffer application data; returns the encoded chunks that filled up."""
        self._check_writable()
        if not data:
            return b""
        size = self.chunk_size
        if not self._buffer and len(data) >= size:
            # Nothing buffered: full chunks go straight from the caller's data, only the
            # remainder is copied into the buffer.
            source = memoryview(data).cast("B")
            total = len(source)
            chunks: list[bytes] = []
            start = 0
            while total - start >= size:
                piece = source[start : start + size]
                chunks.append(self._emit(piece if self._compression is None else piece.tobytes(), end=False))
                start += size
            if start < total:
                self._buffer += source[start:]
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._buffer += data
        if len(self._buffer) < self.chunk_size:
            return b""
        out: list[bytes] = []
        view = memoryview(self._buffer)
        start = 0
        while len(self._buffer) - start >= self.chunk_size:
            out.append(self._emit(bytes(view[start : start + self.chunk_size]), end=False))
            start += self.chunk_size
        view.release()
        del self._buffer[:start]
        return b"".join(out)

    def flush(self) -> bytes:
        """Emit buffered data as one chunk (nothing when the buffer is empty)."""
        self._check_writable()
        if not self._buffer:
            return b""
        data = bytes(self._buffer)
        self._buffer.clear()
        return self._emit(data, end=False)

    def close(self) -> bytes:
        """Finish the message: the end-of-message chunk with whatever is buffered.

        Error and handshake messages have no chunks; closing them returns nothing.
        """
        if self._closed:
            return b""
        self._closed = True
        if not self._accepts_data:
            return b""
        data = bytes(self._buffer)
        self._buffer.clear()
        return self._emit(data, end=True)

    def _check_writable(self) -> None:
        if self._closed:
            raise MslInternalException("message already closed")
        if not self._accepts_data:
            raise MslMessageException(MslError.MESSAGE_FORMAT_ERROR, "error and handshake messages carry no data")

    def _emit(self, data: bytes | memoryview, *, end: bool) -> bytes:
        assert self._crypto is not None
        chunk = encode_chunk(
            self._crypto,
            self._sequence,
            self._message_id,
            data,
            end_of_message=end,
            compression=self._compression,
            encoder_format=self._format,
        )
        self._sequence += 1
        return chunk

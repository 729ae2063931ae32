"""Message headers, error headers, payload chunks, and the sans-IO reader and writer."""

from missile.messages.capabilities import DEFAULT_CAPABILITIES, JSON_PREFERRED, MessageCapabilities
from missile.messages.error_header import ErrorHeader
from missile.messages.events import ErrorReceived, Event, HeaderReceived, MessageEnd, PayloadReceived
from missile.messages.header import HeaderData, MessageHeader
from missile.messages.payload import PayloadChunk, encode_chunk
from missile.messages.reader import MessageReader, ReaderLimits
from missile.messages.writer import DEFAULT_CHUNK_SIZE, MessageWriter

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_CHUNK_SIZE",
    "ErrorHeader",
    "ErrorReceived",
    "Event",
    "HeaderData",
    "HeaderReceived",
    "JSON_PREFERRED",
    "MessageCapabilities",
    "MessageEnd",
    "MessageHeader",
    "MessageReader",
    "MessageWriter",
    "PayloadChunk",
    "PayloadReceived",
    "ReaderLimits",
    "encode_chunk",
]

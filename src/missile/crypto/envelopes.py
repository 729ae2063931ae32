"""Ciphertext and signature envelopes (crypto.md §3, §4; interop.md B.9, B.10).

Only version 1 is ever produced: a ciphertext envelope is the JSON object
``{"keyid","iv","ciphertext","sha256":"AA=="}`` and a signature envelope is the raw
tag. Version 2 is understood on input.

In the binary format (docs/binary-format.md §5) a V1 envelope is the map
``{"keyid","iv","ciphertext"}`` with byte strings and no dummy ``sha256`` (it carries no
meaning, and the binary format has no reference parser to satisfy). Crypto contexts
write JSON envelopes; :func:`envelope_in_format` rewrites one in the binary format
before it is signed, so the signature covers the bytes as sent.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from enum import IntEnum

from missile.crypto.algorithms import CipherSpec, SignatureAlgo
from missile.encoding import EncoderFormat, MslObject, cbor, decode, encode
from missile.encoding.base64 import b64decode, b64encode_bytes
from missile.encoding.codec import match_canonical
from missile.errors import MslCryptoException, MslEncodingException, MslError

__all__ = [
    "EnvelopeVersion",
    "CiphertextEnvelope",
    "SignatureEnvelope",
    "encode_v1_binary",
    "envelope_in_format",
]

_KEY_VERSION = "version"
_KEY_KEY_ID = "keyid"
_KEY_CIPHERSPEC = "cipherspec"
_KEY_IV = "iv"
_KEY_CIPHERTEXT = "ciphertext"
_KEY_SHA256 = "sha256"
_KEY_ALGORITHM = "algorithm"
_KEY_SIGNATURE = "signature"


class EnvelopeVersion(IntEnum):
    """Envelope format versions."""

    V1 = 1
    V2 = 2


def _b64(data: bytes | memoryview) -> bytes:
    return b64encode_bytes(data)


@dataclass(frozen=True, slots=True)
class CiphertextEnvelope:
    """A parsed or to-be-written ciphertext envelope (crypto.md §3).

    V1 carries ``key_id`` (and a dummy ``sha256`` that is written as ``AA==`` and ignored
    on input); V2 carries ``cipher_spec`` instead. ``iv`` is None when absent.
    """

    version: EnvelopeVersion
    ciphertext: bytes
    iv: bytes | None = None
    key_id: str | None = None
    cipher_spec: CipherSpec | None = None

    @classmethod
    def v1(cls, key_id: str, iv: bytes | None, ciphertext: bytes) -> CiphertextEnvelope:
        """A version 1 envelope, the only kind missile emits."""
        return cls(EnvelopeVersion.V1, ciphertext, iv, key_id=key_id)

    @classmethod
    def v2(cls, cipher_spec: CipherSpec, iv: bytes | None, ciphertext: bytes) -> CiphertextEnvelope:
        """A version 2 envelope (for tests and completeness; never sent to a peer)."""
        return cls(EnvelopeVersion.V2, ciphertext, iv, cipher_spec=cipher_spec)

    def encode(self, fmt: EncoderFormat = EncoderFormat.JSON) -> bytes:
        """The envelope's bytes in ``fmt`` (JSON by default)."""
        binary = fmt is EncoderFormat.MISSILE_CBOR
        if self.version is EnvelopeVersion.V1:
            if binary:
                return encode_v1_binary(self.key_id or "", self.iv, self.ciphertext)
            return encode_v1(self.key_id or "", self.iv, self.ciphertext)
        if self.cipher_spec is None:
            raise MslCryptoException(MslError.CIPHERTEXT_ENVELOPE_ENCODE_ERROR, "no cipher spec")
        return encode(
            {
                _KEY_VERSION: int(self.version),
                _KEY_CIPHERSPEC: str(self.cipher_spec),
                _KEY_IV: self.iv,
                _KEY_CIPHERTEXT: self.ciphertext,
            },
            fmt,
        )

    @classmethod
    def parse(cls, data: bytes | MslObject, version: EnvelopeVersion | None = None) -> CiphertextEnvelope:
        """Parse envelope bytes (or an already decoded object).

        With ``version`` None the version is detected like the reference: an integer
        ``version`` member selects V1/V2 (other numbers raise
        ``UNIDENTIFIED_CIPHERTEXT_ENVELOPE``); a missing or non-integer one means V1.
        Passing ``EnvelopeVersion.V1`` reproduces the reference contexts' forced-V1 mode.
        Structural problems raise ``CIPHERTEXT_ENVELOPE_PARSE_ERROR``.
        """
        if isinstance(data, MslObject):
            obj = data
        else:
            fast = _parse_v1_as_written(data) if version is not EnvelopeVersion.V2 else None
            if fast is not None:
                return fast
            try:
                obj = decode(data)
            except MslEncodingException as e:
                raise MslCryptoException(
                    MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR, "envelope is not an MSL object", cause=e
                ) from e
        if version is None:
            version = _detect_ciphertext_version(obj)
        try:
            if version is EnvelopeVersion.V1:
                key_id = obj.get_string(_KEY_KEY_ID)
                iv = obj.opt_bytes(_KEY_IV)
                ciphertext = obj.get_bytes(_KEY_CIPHERTEXT)
                if obj.binary:
                    obj.opt_bytes(_KEY_SHA256)  # optional in the binary format, ignored
                else:
                    obj.get_bytes(_KEY_SHA256)  # required, value ignored (crypto.md §3)
                return cls(EnvelopeVersion.V1, ciphertext, iv, key_id=key_id)
            spec_name = obj.get_string(_KEY_CIPHERSPEC)
            iv = obj.opt_bytes(_KEY_IV)
            ciphertext = obj.get_bytes(_KEY_CIPHERTEXT)
        except MslEncodingException as e:
            raise MslCryptoException(
                MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR, "malformed ciphertext envelope", cause=e
            ) from e
        return cls(EnvelopeVersion.V2, ciphertext, iv, cipher_spec=CipherSpec.from_wire(spec_name))


#: A V1 envelope exactly as missile (and the reference) writes it, up to the ciphertext.
V1_HEAD = re.compile(rb'\{"keyid":"([ !#-\[\]-~]*)","iv":"([A-Za-z0-9+/]*={0,2})","ciphertext":"')
V1_TAIL = b'","sha256":"AA=="}'


def _parse_v1_as_written(data: bytes) -> CiphertextEnvelope | None:
    """The envelope of a payload chunk, without the general object parser, when it is
    byte for byte in the canonical form (printable ASCII key ID, no escapes, keys in the
    written order); None for anything else, which the general parser then reads with
    exactly the same result or error."""
    matched = match_canonical(data, V1_HEAD, V1_TAIL)
    if matched is None:
        return None
    head, ciphertext = matched
    try:
        iv = b64decode(head.group(2))
    except MslEncodingException:
        return None
    return CiphertextEnvelope(EnvelopeVersion.V1, ciphertext, iv, key_id=head.group(1).decode("ascii"))


def _detect_ciphertext_version(obj: MslObject) -> EnvelopeVersion:
    try:
        number = obj.opt_int(_KEY_VERSION)
    except MslEncodingException:
        return EnvelopeVersion.V1
    if number is None:
        return EnvelopeVersion.V1
    try:
        return EnvelopeVersion(number)
    except ValueError:
        raise MslCryptoException(MslError.UNIDENTIFIED_CIPHERTEXT_ENVELOPE, f"envelope version {number}") from None


def encode_v1(key_id: str, iv: bytes | None, ciphertext: bytes) -> bytes:
    """Write a V1 ciphertext envelope directly (the hot path for payload chunks).

    Equivalent to encoding ``{"keyid","iv","ciphertext","sha256":[0x00]}`` (crypto.md §3)
    without building intermediate strings for the (possibly megabyte-sized) ciphertext.
    """
    return b"".join(encode_v1_parts(key_id, iv, ciphertext))


@functools.lru_cache(maxsize=1024)
def _key_id_head(key_id: str) -> bytes:
    """``{"keyid":<key_id>,"iv":"`` (a context encrypts many times under one key ID)."""
    return b'{"keyid":' + json.dumps(key_id, ensure_ascii=False).encode("utf-8") + b',"iv":"'


def encode_v1_parts(key_id: str, iv: bytes | None, ciphertext: bytes | memoryview) -> tuple[bytes, bytes, bytes]:
    """:func:`encode_v1` as three pieces: the text before the base64 ciphertext, the
    base64 ciphertext, and the text after it."""
    if iv is not None:
        head = b"".join((_key_id_head(key_id), _b64(iv), b'","ciphertext":"'))
    else:
        head = b'{"keyid":' + json.dumps(key_id, ensure_ascii=False).encode("utf-8") + b',"ciphertext":"'
    return head, _b64(ciphertext), V1_TAIL


def encode_v1_binary(key_id: str, iv: bytes | None, ciphertext: bytes | memoryview) -> bytes:
    """A V1 ciphertext envelope in the binary format, written directly: the map's keys
    in their deterministic order (``iv``, ``keyid``, ``ciphertext``), the ciphertext
    copied once."""
    parts: list[bytes | memoryview] = [_BINARY_HEAD_WITH_IV if iv is not None else _BINARY_HEAD_NO_IV]
    if iv is not None:
        parts += (cbor.bytes_head(len(iv)), iv)
    parts += (_BINARY_KEYID, cbor.encode_text(key_id), _BINARY_CIPHERTEXT, cbor.bytes_head(len(ciphertext)), ciphertext)
    return b"".join(parts)


_BINARY_HEAD_WITH_IV = bytes((cbor.IDENTIFIER,)) + cbor.map_head(3) + cbor.encode_text(_KEY_IV)
_BINARY_HEAD_NO_IV = bytes((cbor.IDENTIFIER,)) + cbor.map_head(2)
_BINARY_KEYID = cbor.encode_text(_KEY_KEY_ID)
_BINARY_CIPHERTEXT = cbor.encode_text(_KEY_CIPHERTEXT)


def envelope_in_format(protected: bytes, fmt: EncoderFormat) -> bytes:
    """What a crypto context's ``encrypt`` returned, in ``fmt``.

    A JSON V1 ciphertext envelope becomes the same envelope in the binary format; anything
    else (data a non-encrypting context passed through, or a format of some other
    context) is returned as it is, since only its own context reads it back."""
    if fmt is EncoderFormat.JSON or not protected or protected[0] != 0x7B:
        return protected
    envelope = _parse_v1_as_written(protected)
    if envelope is None:
        try:
            envelope = CiphertextEnvelope.parse(protected, EnvelopeVersion.V1)
        except MslCryptoException:
            return protected
    return envelope.encode(fmt)


@dataclass(frozen=True, slots=True)
class SignatureEnvelope:
    """A signature envelope (crypto.md §4): V1 is the raw tag; V2 a JSON object."""

    signature: bytes
    version: EnvelopeVersion = EnvelopeVersion.V1
    algorithm: SignatureAlgo | None = None

    def encode(self, fmt: EncoderFormat = EncoderFormat.JSON) -> bytes:
        """Envelope bytes: the raw signature for V1, the object in ``fmt`` for V2."""
        if self.version is EnvelopeVersion.V1:
            return self.signature
        if self.algorithm is None:
            raise MslCryptoException(MslError.SIGNATURE_ENVELOPE_ENCODE_ERROR, "no algorithm")
        return encode(
            {
                _KEY_VERSION: int(self.version),
                _KEY_ALGORITHM: str(self.algorithm),
                _KEY_SIGNATURE: self.signature,
            },
            fmt,
        )

    @classmethod
    def parse(cls, data: bytes) -> SignatureEnvelope:
        """Detect and parse: a well-formed V2 object, otherwise the raw V1 signature.

        Never raises: anything that is not a usable V2 envelope is a V1 raw tag (§4).
        """
        if not data or data[0] not in (0x7B, cbor.IDENTIFIER):  # '{' or the binary format's byte
            return cls(data)
        try:
            obj = decode(data)
            if obj.opt_int(_KEY_VERSION) != EnvelopeVersion.V2:
                return cls(data)
            algorithm = SignatureAlgo(obj.get_string(_KEY_ALGORITHM))
            signature = obj.get_bytes(_KEY_SIGNATURE)
        except (MslEncodingException, ValueError):
            return cls(data)
        return cls(signature, EnvelopeVersion.V2, algorithm)

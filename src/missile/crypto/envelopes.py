"""Ciphertext and signature envelopes (crypto.md §3, §4; interop.md B.9, B.10).

Only version 1 is ever produced: a ciphertext envelope is the JSON object
``{"ciphertext","sha256":"AA==","keyid","iv"}`` (members in the reference's order) and a
signature envelope is the raw tag. Version 2 is understood on input.

In the binary format (docs/binary-format.md §5) a V1 envelope is the map
``{"keyid","iv","ciphertext"}`` with byte strings and no dummy ``sha256`` (it carries no
meaning, and the binary format has no reference parser to satisfy). A crypto context's
``encrypt`` writes JSON envelopes; its ``encrypt_in_format`` writes the format of the
message (the signature covers the bytes as sent), by default rewriting the JSON one with
:func:`envelope_in_format`, in the symmetric contexts directly with
:func:`encode_v1_binary`.
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
from missile.errors import MslCryptoException, MslEncodingException, MslError

__all__ = [
    "EnvelopeVersion",
    "CiphertextEnvelope",
    "SignatureEnvelope",
    "V1_JSON_HEAD",
    "encode_v1",
    "encode_v1_binary",
    "envelope_in_format",
    "read_v1_binary",
    "read_v1_json",
    "v1_binary_head",
    "v1_json_iv_head",
    "v1_json_tail",
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


def encode_v1(key_id: str, iv: bytes | None, ciphertext: bytes | memoryview) -> bytes:
    """Write a V1 ciphertext envelope directly, members in the reference's order
    (``ciphertext``, ``sha256``, ``keyid``, ``iv``; :func:`~missile.encoding.codec.java_order`).

    Equivalent to encoding ``{"keyid","iv","ciphertext","sha256":[0x00]}`` (crypto.md §3)
    without building intermediate strings for the (possibly megabyte-sized) ciphertext.
    """
    return b"".join((V1_JSON_HEAD, _b64(ciphertext), v1_json_tail(key_id, iv)))


#: The text of a JSON V1 envelope before its base64 ciphertext.
V1_JSON_HEAD = b'{"ciphertext":"'


@functools.lru_cache(maxsize=1024)
def _key_id_text(key_id: str) -> bytes:
    """``","sha256":"AA==","keyid":<key_id>`` (a context encrypts many times under one key ID)."""
    return b'","sha256":"AA==","keyid":' + json.dumps(key_id, ensure_ascii=False).encode("utf-8")


def v1_json_tail(key_id: str, iv: bytes | None) -> bytes:
    """The text of a JSON V1 envelope after its base64 ciphertext."""
    if iv is None:
        return _key_id_text(key_id) + b"}"
    return b"".join((v1_json_iv_head(key_id), _b64(iv), b'"}'))


@functools.lru_cache(maxsize=1024)
def v1_json_iv_head(key_id: str) -> bytes:
    """The text of a JSON V1 envelope between its base64 ciphertext and its base64 IV."""
    return _key_id_text(key_id) + b',"iv":"'


def encode_v1_binary(key_id: str, iv: bytes | None, ciphertext: bytes | memoryview) -> bytes:
    """A V1 ciphertext envelope in the binary format, written directly: the map's keys
    in their deterministic order (``iv``, ``keyid``, ``ciphertext``), the ciphertext
    copied once."""
    return b"".join((v1_binary_head(key_id, iv, len(ciphertext)), ciphertext))


def v1_binary_head(key_id: str, iv: bytes | None, ciphertext_size: int) -> bytes:
    """The bytes of a binary V1 envelope before its ciphertext of ``ciphertext_size`` bytes."""
    if iv is None:
        return b"".join((_BINARY_HEAD_NO_IV, _binary_key_id(key_id), cbor.bytes_head(ciphertext_size)))
    return b"".join(
        (_BINARY_HEAD_WITH_IV, cbor.bytes_head(len(iv)), iv, _binary_key_id(key_id), cbor.bytes_head(ciphertext_size))
    )


@functools.lru_cache(maxsize=1024)
def _binary_key_id(key_id: str) -> bytes:
    """The key ID member and the ciphertext's key (a context encrypts many times under
    one key ID; the bound keeps the cache small whatever key IDs appear)."""
    return _BINARY_KEYID + cbor.encode_text(key_id) + _BINARY_CIPHERTEXT


_BINARY_HEAD_WITH_IV = bytes((cbor.IDENTIFIER,)) + cbor.map_head(3) + cbor.encode_text(_KEY_IV)
_BINARY_HEAD_NO_IV = bytes((cbor.IDENTIFIER,)) + cbor.map_head(2)
_BINARY_KEYID = cbor.encode_text(_KEY_KEY_ID)
_BINARY_CIPHERTEXT = cbor.encode_text(_KEY_CIPHERTEXT)
#: A binary V1 envelope with a 16-byte IV, up to the IV's bytes.
_BINARY_IV_HEAD = _BINARY_HEAD_WITH_IV + cbor.bytes_head(16)
_BINARY_KEYID_AT = len(_BINARY_IV_HEAD) + 16


def read_v1_binary(data: bytes, start: int, stop: int) -> tuple[bytes, int] | None:
    """The IV and the offset of the ciphertext of ``data[start:stop]`` when it is a binary
    V1 envelope of exactly the shape :func:`encode_v1_binary` writes with a 16-byte IV
    (``iv``, ``keyid`` text, ``ciphertext``, every head minimal, nothing after); None for
    anything else, which the caller then hands to :meth:`CiphertextEnvelope.parse`.

    What it accepts the general parser accepts with the same IV and ciphertext (the
    deterministic map of these three members): it only spares decoding the envelope
    into objects, on every header and payload chunk (property-tested against the
    general parser on edited envelopes)."""
    if not data.startswith(_BINARY_IV_HEAD, start) or not data.startswith(_BINARY_KEYID, start + _BINARY_KEYID_AT):
        return None
    head = cbor.minimal_head(data, start + _BINARY_KEYID_AT + len(_BINARY_KEYID), 3)
    if head is None:
        return None
    size, at = head
    key_end = at + size
    if not data.startswith(_BINARY_CIPHERTEXT, key_end):
        return None
    try:
        data[at:key_end].decode("utf-8")  # never used, but it must be text
    except UnicodeDecodeError:
        return None
    head = cbor.minimal_head(data, key_end + len(_BINARY_CIPHERTEXT), 2)
    if head is None or head[0] + head[1] != stop:
        return None
    iv_at = start + len(_BINARY_IV_HEAD)
    return data[iv_at : iv_at + 16], head[1]


#: A JSON V1 envelope exactly as :func:`encode_v1` writes it with an IV and a key ID of
#: printable ASCII other than a quote or a backslash (so it needs no escape).
_JSON_V1 = re.compile(
    rb'\{"ciphertext":"([A-Za-z0-9+/]*={0,2})","sha256":"AA==","keyid":"[ !#-\[\]-~]*","iv":"([A-Za-z0-9+/]*={0,2})"\}'
)


def read_v1_json(data: bytes) -> tuple[bytes, bytes] | None:
    """The IV and the ciphertext of ``data`` when it is a JSON V1 envelope of exactly the
    shape :func:`encode_v1` writes (members in the reference's order, no escapes, no
    whitespace); None for anything else, which the caller then hands to
    :meth:`CiphertextEnvelope.parse`. What it accepts the general parser reads the same
    way (property-tested on edited envelopes); it spares decoding the object."""
    match = _JSON_V1.fullmatch(data)
    if match is None:
        return None
    try:
        return b64decode(match.group(2)), b64decode(match.group(1))
    except MslEncodingException:
        return None


def envelope_in_format(protected: bytes, fmt: EncoderFormat) -> bytes:
    """What a crypto context's ``encrypt`` returned, in ``fmt``.

    A JSON V1 ciphertext envelope becomes the same envelope in the binary format; anything
    else (data a non-encrypting context passed through, or a format of some other
    context) is returned as it is, since only its own context reads it back."""
    if fmt is EncoderFormat.JSON or not protected or protected[0] != 0x7B:
        return protected
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

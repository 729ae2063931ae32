"""Ciphertext and signature envelopes (crypto.md §3, §4; interop.md B.9, B.10).

Only version 1 is ever produced: a ciphertext envelope is the JSON object
``{"keyid","iv","ciphertext","sha256":"AA=="}`` and a signature envelope is the raw
tag. Version 2 is understood on input.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from enum import IntEnum

from missile.crypto.algorithms import CipherSpec, SignatureAlgo
from missile.encoding import MslObject, decode, encode
from missile.encoding.base64 import b64decode, b64encode_bytes
from missile.encoding.codec import match_canonical
from missile.errors import MslCryptoException, MslEncodingException, MslError

__all__ = [
    "EnvelopeVersion",
    "CiphertextEnvelope",
    "SignatureEnvelope",
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

    def encode(self) -> bytes:
        """The envelope's JSON bytes."""
        if self.version is EnvelopeVersion.V1:
            return encode_v1(self.key_id or "", self.iv, self.ciphertext)
        if self.cipher_spec is None:
            raise MslCryptoException(MslError.CIPHERTEXT_ENVELOPE_ENCODE_ERROR, "no cipher spec")
        return encode(
            {
                _KEY_VERSION: int(self.version),
                _KEY_CIPHERSPEC: str(self.cipher_spec),
                _KEY_IV: self.iv,
                _KEY_CIPHERTEXT: self.ciphertext,
            }
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


@dataclass(frozen=True, slots=True)
class SignatureEnvelope:
    """A signature envelope (crypto.md §4): V1 is the raw tag; V2 a JSON object."""

    signature: bytes
    version: EnvelopeVersion = EnvelopeVersion.V1
    algorithm: SignatureAlgo | None = None

    def encode(self) -> bytes:
        """Envelope bytes: the raw signature for V1, the JSON object for V2."""
        if self.version is EnvelopeVersion.V1:
            return self.signature
        if self.algorithm is None:
            raise MslCryptoException(MslError.SIGNATURE_ENVELOPE_ENCODE_ERROR, "no algorithm")
        return encode(
            {
                _KEY_VERSION: int(self.version),
                _KEY_ALGORITHM: str(self.algorithm),
                _KEY_SIGNATURE: self.signature,
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> SignatureEnvelope:
        """Detect and parse: a well-formed V2 object, otherwise the raw V1 signature.

        Never raises: anything that is not a usable V2 envelope is a V1 raw tag (§4).
        """
        if not data or data[0] != 0x7B:  # '{'
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

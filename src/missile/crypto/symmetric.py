"""Symmetric and session crypto contexts (crypto.md §5).

AES-128-CBC with PKCS#5 padding inside a V1 ciphertext envelope, HMAC-SHA256 or AES-CMAC
tags as V1 (raw) signature envelopes, and RFC 3394 AES Key Wrap.
"""

from __future__ import annotations

import hmac as std_hmac
from typing import Any, ClassVar

from cryptography.hazmat.primitives import cmac, hashes, hmac, keywrap
from cryptography.hazmat.primitives.ciphers import algorithms

from missile.crypto import cbc
from missile.crypto.algorithms import SignatureAlgo
from missile.crypto.cbc import AES_BLOCK_SIZE
from missile.crypto.chunks import ChunkCodec
from missile.crypto.context import CryptoContext
from missile.crypto.envelopes import (
    CiphertextEnvelope,
    EnvelopeVersion,
    encode_v1,
    encode_v1_binary,
    read_v1_binary,
    read_v1_json,
)
from missile.crypto.random import DEFAULT_RANDOM, RandomSource
from missile.crypto.symmetric_chunks import ChunkKeys, SymmetricChunkCodec, signature_tag
from missile.encoding import EncoderFormat, cbor
from missile.errors import MslCryptoException, MslError

__all__ = [
    "SymmetricCryptoContext",
    "SessionCryptoContext",
    "session_crypto_context",
    "aes_key_wrap",
    "aes_key_unwrap",
]

#: The operations a payload chunk goes through; overriding one forgoes the streaming codec.
_CHUNK_OPERATIONS = ("encrypt", "decrypt", "sign", "verify")
_AES_KEY_SIZES = (16, 24, 32)
_BINARY_ID = bytes((cbor.IDENTIFIER,))


def aes_key_wrap(key: bytes, data: bytes) -> bytes:
    """RFC 3394 AES Key Wrap (default IV ``A6A6A6A6A6A6A6A6``).

    Input must be a non-empty multiple of 8 bytes of at least 16 bytes
    (``PLAINTEXT_ILLEGAL_BLOCK_SIZE`` otherwise, crypto.md §5).
    """
    if len(data) < 16 or len(data) % 8:
        raise MslCryptoException(MslError.PLAINTEXT_ILLEGAL_BLOCK_SIZE, f"key wrap input of {len(data)} bytes")
    try:
        return keywrap.aes_key_wrap(key, data)
    except ValueError as e:
        raise MslCryptoException(MslError.INVALID_WRAPPING_KEY, "key wrap failed", cause=e) from e


def aes_key_unwrap(key: bytes, data: bytes) -> bytes:
    """RFC 3394 AES Key Unwrap; an integrity failure raises ``UNWRAP_ERROR``."""
    if len(data) % 8:
        raise MslCryptoException(MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE, f"wrapped data of {len(data)} bytes")
    if len(data) < 24:
        # The smallest RFC 3394 output (two 64-bit blocks plus the integrity block).
        raise MslCryptoException(MslError.INVALID_WRAP_CIPHERTEXT, f"wrapped data of {len(data)} bytes")
    try:
        return keywrap.aes_key_unwrap(key, data)
    except keywrap.InvalidUnwrap as e:
        raise MslCryptoException(MslError.UNWRAP_ERROR, "key unwrap integrity check failed", cause=e) from e
    except ValueError as e:
        raise MslCryptoException(MslError.INVALID_WRAPPING_KEY, "key unwrap failed", cause=e) from e


class SymmetricCryptoContext(CryptoContext):
    """AES-CBC / HMAC-SHA256 or AES-CMAC / AES-KW context (crypto.md §5).

    Any of the three keys may be None; the operations needing a missing key raise the
    matching ``*_NOT_SUPPORTED`` error. The key ID is written into every ciphertext
    envelope and never checked on decrypt. All randomness comes from ``random``.
    """

    #: True when chunks may use the streaming codec (see :meth:`__init_subclass__`).
    streams_chunks: ClassVar[bool] = True
    #: True when :meth:`encrypt_in_format` may write envelopes itself: false for a
    #: subclass that overrides :meth:`encrypt` (see :meth:`__init_subclass__`).
    writes_envelopes: ClassVar[bool] = True

    __slots__ = (
        "_cbc",
        "_chunk_codecs",
        "_encryption_key",
        "_key_id",
        "_mac_template",
        "_random",
        "_signature_algorithm",
        "_signature_key",
        "_wrap_key",
    )

    def __init__(
        self,
        key_id: str,
        encryption_key: bytes | None = None,
        signature_key: bytes | None = None,
        wrap_key: bytes | None = None,
        *,
        signature_algorithm: SignatureAlgo | str = SignatureAlgo.HMAC_SHA256,
        random: RandomSource = DEFAULT_RANDOM,
    ) -> None:
        self._key_id = key_id
        self._random = random
        self._encryption_key = encryption_key
        self._cbc: cbc.CbcKey | None = None
        if encryption_key is not None:
            if len(encryption_key) not in _AES_KEY_SIZES:
                raise MslCryptoException(MslError.INVALID_ENCRYPTION_KEY, f"{len(encryption_key)}-byte AES key")
            self._cbc = cbc.CbcKey(algorithms.AES(encryption_key))

        try:
            algo = SignatureAlgo(signature_algorithm)
        except ValueError:
            raise MslCryptoException(MslError.UNIDENTIFIED_ALGORITHM, str(signature_algorithm)) from None
        self._signature_algorithm = algo
        self._signature_key = signature_key
        self._mac_template: hmac.HMAC | cmac.CMAC | None = None
        if signature_key is not None:
            if algo is SignatureAlgo.HMAC_SHA256:
                if not signature_key:
                    raise MslCryptoException(MslError.INVALID_HMAC_KEY, "empty HMAC key")
                self._mac_template = hmac.HMAC(signature_key, hashes.SHA256())
            elif algo is SignatureAlgo.AES_CMAC:
                if len(signature_key) not in _AES_KEY_SIZES:
                    raise MslCryptoException(MslError.INVALID_HMAC_KEY, f"{len(signature_key)}-byte CMAC key")
                self._mac_template = cmac.CMAC(algorithms.AES(signature_key))
            else:
                raise MslCryptoException(MslError.INVALID_HMAC_KEY, f"{algo} is not a symmetric algorithm")

        if wrap_key is not None and len(wrap_key) not in _AES_KEY_SIZES:
            raise MslCryptoException(MslError.INVALID_WRAPPING_KEY, f"{len(wrap_key)}-byte AES key")
        self._wrap_key = wrap_key
        self._chunk_codecs: dict[EncoderFormat, ChunkCodec] = {}

    # -- accessors ---------------------------------------------------------------------

    @property
    def key_id(self) -> str:
        """The key ID written into ciphertext envelopes."""
        return self._key_id

    @property
    def encryption_key(self) -> bytes | None:
        """The AES encryption key, if any."""
        return self._encryption_key

    @property
    def signature_key(self) -> bytes | None:
        """The HMAC or CMAC key, if any."""
        return self._signature_key

    @property
    def signature_algorithm(self) -> SignatureAlgo:
        """``HmacSHA256`` or ``AESCmac``."""
        return self._signature_algorithm

    @property
    def wrap_key(self) -> bytes | None:
        """The AES key-wrap key, if any."""
        return self._wrap_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self._key_id!r})"

    # -- encryption --------------------------------------------------------------------

    def encrypt(self, data: bytes) -> bytes:
        """AES-CBC/PKCS#5 under a fresh random IV, as a V1 envelope (crypto.md §5)."""
        if self._cbc is None:
            raise MslCryptoException(MslError.ENCRYPT_NOT_SUPPORTED, "no encryption key")
        iv = self._random.random_bytes(AES_BLOCK_SIZE)
        return encode_v1(self._key_id, iv, self._cbc.encrypt(iv, data) if data else b"")

    def encrypt_in_format(self, data: bytes, encoder_format: EncoderFormat) -> bytes:
        """:meth:`encrypt` writing the V1 envelope straight in ``encoder_format``: the
        bytes the default (JSON, then rewritten) gives for the same IV, without parsing
        the envelope back. A subclass that overrides :meth:`encrypt` gets the default,
        built on its override (see :meth:`__init_subclass__`)."""
        if not self.writes_envelopes:
            return super().encrypt_in_format(data, encoder_format)
        if self._cbc is None:
            raise MslCryptoException(MslError.ENCRYPT_NOT_SUPPORTED, "no encryption key")
        iv = self._random.random_bytes(AES_BLOCK_SIZE)
        ciphertext = self._cbc.encrypt(iv, data) if data else b""
        if encoder_format is EncoderFormat.MISSILE_CBOR:
            return encode_v1_binary(self._key_id, iv, ciphertext)
        return encode_v1(self._key_id, iv, ciphertext)

    def decrypt(self, data: bytes) -> bytes:
        """Open a V1 envelope (forced V1, like the reference; the key ID is not checked)."""
        if self._cbc is None:
            raise MslCryptoException(MslError.DECRYPT_NOT_SUPPORTED, "no encryption key")
        # The binary envelope as this library writes it is read in place; anything else
        # (JSON, another shape, malformed) by the general parser, which decides.
        parts = read_v1_binary(data, 0, len(data)) if type(data) is bytes and data[:1] == _BINARY_ID else None
        simple = read_v1_json(data) if parts is None and type(data) is bytes and data[:1] == b"{" else None
        if parts is not None:
            iv, at = parts
            plain, size = self._cbc.decrypt(iv, memoryview(data)[at:])
        elif simple is not None:
            plain, size = self._cbc.decrypt(*simple)
        else:
            envelope = CiphertextEnvelope.parse(data, EnvelopeVersion.V1)
            plain, size = self._cbc.decrypt(envelope.iv, envelope.ciphertext)
        return plain[:size] if type(plain) is bytes else bytes(memoryview(plain)[:size])

    # -- payload chunks ----------------------------------------------------------------

    def chunk_codec(self, encoder_format: EncoderFormat) -> ChunkCodec:
        """The streaming codec of :mod:`missile.crypto.symmetric_chunks`, which writes and
        reads exactly what the general codec does, in one pass; the general codec for a
        subclass that changes the cryptography without declaring ``streams_chunks``
        (see :meth:`__init_subclass__`), or when a key is missing (the general codec then
        raises the ``*_NOT_SUPPORTED`` error)."""
        codec = self._chunk_codecs.get(encoder_format)  # only ever holds streaming codecs
        if codec is not None:
            return codec
        if not self.streams_chunks or self._cbc is None or self._mac_template is None:
            return super().chunk_codec(encoder_format)
        keys = ChunkKeys(self._key_id, self._cbc, self._mac_template, self._random)
        codec = self._chunk_codecs[encoder_format] = SymmetricChunkCodec(self, encoder_format, keys)
        return codec

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that overrides any of the operations a chunk goes through
        (``encrypt``, ``decrypt``, ``sign``, ``verify``) gets the general chunk codec,
        built on its overrides, unless it declares ``streams_chunks = True`` itself
        (saying its overrides keep the stock bytes). Likewise one that overrides
        ``encrypt`` has :meth:`encrypt_in_format` go through it, unless it declares
        ``writes_envelopes = True``. Decided once, by declaration."""
        super().__init_subclass__(**kwargs)
        if "streams_chunks" not in cls.__dict__ and any(name in cls.__dict__ for name in _CHUNK_OPERATIONS):
            cls.streams_chunks = False
        if "encrypt" in cls.__dict__ and "writes_envelopes" not in cls.__dict__:
            cls.writes_envelopes = False

    # -- key wrapping ------------------------------------------------------------------

    def wrap(self, data: bytes) -> bytes:
        """RFC 3394 AES Key Wrap with the wrapping key."""
        if self._wrap_key is None:
            raise MslCryptoException(MslError.WRAP_NOT_SUPPORTED, "no wrap key")
        return aes_key_wrap(self._wrap_key, data)

    def unwrap(self, data: bytes) -> bytes:
        """RFC 3394 AES Key Unwrap with the wrapping key."""
        if self._wrap_key is None:
            raise MslCryptoException(MslError.UNWRAP_NOT_SUPPORTED, "no wrap key")
        return aes_key_unwrap(self._wrap_key, data)

    # -- authentication ----------------------------------------------------------------

    def sign(self, data: bytes) -> bytes:
        """The raw HMAC-SHA256 (32 bytes) or AES-CMAC (16 bytes) tag: a V1 signature envelope."""
        if self._mac_template is None:
            raise MslCryptoException(MslError.SIGN_NOT_SUPPORTED, "no signature key")
        mac = self._mac_template.copy()
        mac.update(data)
        return mac.finalize()

    def verify(self, data: bytes, signature: bytes) -> bool:
        """Recompute the tag and compare in constant time (length mismatch is False).

        The comparison is :func:`hmac.compare_digest`, the constant-time primitive every
        secret comparison in missile uses.
        """
        if self._mac_template is None:
            raise MslCryptoException(MslError.VERIFY_NOT_SUPPORTED, "no signature key")
        mac = self._mac_template.copy()
        mac.update(data)
        return std_hmac.compare_digest(mac.finalize(), signature_tag(signature))


class SessionCryptoContext(SymmetricCryptoContext):
    """The context of a master token's session keys (crypto.md §5, "Session crypto context").

    Key ID ``"<identity>_<sequence number>"`` (just the number when the identity is
    unknown); no wrapping key, so wrap/unwrap raise ``WRAP_NOT_SUPPORTED`` /
    ``UNWRAP_NOT_SUPPORTED``.
    """

    __slots__ = ()

    def __init__(
        self,
        identity: str | None,
        sequence_number: int,
        encryption_key: bytes,
        signature_key: bytes,
        signature_algorithm: SignatureAlgo | str = SignatureAlgo.HMAC_SHA256,
        *,
        random: RandomSource = DEFAULT_RANDOM,
    ) -> None:
        key_id = f"{identity}_{sequence_number}" if identity is not None else str(sequence_number)
        super().__init__(
            key_id,
            encryption_key,
            signature_key,
            None,
            signature_algorithm=signature_algorithm,
            random=random,
        )


def session_crypto_context(
    identity: str | None,
    sequence_number: int,
    encryption_key: bytes,
    signature_key: bytes,
    signature_algorithm: SignatureAlgo | str = SignatureAlgo.HMAC_SHA256,
    random: RandomSource = DEFAULT_RANDOM,
) -> SessionCryptoContext:
    """Build the :class:`SessionCryptoContext` for session keys (crypto.md §5)."""
    return SessionCryptoContext(
        identity, sequence_number, encryption_key, signature_key, signature_algorithm, random=random
    )

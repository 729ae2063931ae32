"""Symmetric and session crypto contexts (crypto.md §5).

AES-128-CBC with PKCS#5 padding inside a V1 ciphertext envelope, HMAC-SHA256 or AES-CMAC
tags as V1 (raw) signature envelopes, and RFC 3394 AES Key Wrap.
"""

from __future__ import annotations

import hmac as std_hmac
from collections.abc import Iterable, Iterator

from cryptography.hazmat.primitives import cmac, hashes, hmac, keywrap, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from missile.crypto.algorithms import SignatureAlgo
from missile.crypto.context import CryptoContext
from missile.crypto.envelopes import CiphertextEnvelope, EnvelopeVersion, SignatureEnvelope, encode_v1, encode_v1_parts
from missile.crypto.random import DEFAULT_RANDOM, RandomSource
from missile.encoding.base64 import b64encode_stream
from missile.errors import MslCryptoException, MslError, MslInternalException

__all__ = [
    "SymmetricCryptoContext",
    "SessionCryptoContext",
    "session_crypto_context",
    "aes_key_wrap",
    "aes_key_unwrap",
]

AES_BLOCK_SIZE = 16
#: Ciphertexts up to this size are decrypted with update() (cheapest for small ones),
#: larger ones into a preallocated buffer.
_IN_PLACE_THRESHOLD = 64 * 1024
_PKCS7 = padding.PKCS7(128)
#: PKCS#5/7 padding by length: n bytes of value n (1 to 16).
_PADDING = tuple(bytes((n,)) * n for n in range(AES_BLOCK_SIZE + 1))
_AES_KEY_SIZES = (16, 24, 32)


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


def _unpad(block: bytes) -> bytes:
    """The data in the last plaintext block, its PKCS#5 padding checked and removed."""
    unpadder = _PKCS7.unpadder()
    try:
        return unpadder.update(block) + unpadder.finalize()
    except ValueError as e:
        raise MslCryptoException(MslError.CIPHERTEXT_BAD_PADDING, "invalid padding", cause=e) from e


def _tag(signature: bytes) -> bytes:
    """The tag in a signature envelope: the raw (V1) bytes unless they could be a V2 object."""
    return SignatureEnvelope.parse(signature).signature if signature.startswith(b"{") else signature


class SymmetricCryptoContext(CryptoContext):
    """AES-CBC / HMAC-SHA256 or AES-CMAC / AES-KW context (crypto.md §5).

    Any of the three keys may be None; the operations needing a missing key raise the
    matching ``*_NOT_SUPPORTED`` error. The key ID is written into every ciphertext
    envelope and never checked on decrypt. All randomness comes from ``random``.
    """

    __slots__ = (
        "_aes",
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
        self._aes: algorithms.AES | None = None
        if encryption_key is not None:
            if len(encryption_key) not in _AES_KEY_SIZES:
                raise MslCryptoException(MslError.INVALID_ENCRYPTION_KEY, f"{len(encryption_key)}-byte AES key")
            self._aes = algorithms.AES(encryption_key)

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
        if self._aes is None:
            raise MslCryptoException(MslError.ENCRYPT_NOT_SUPPORTED, "no encryption key")
        iv = self._random.random_bytes(AES_BLOCK_SIZE)
        if not data:
            return encode_v1(self._key_id, iv, b"")
        encryptor = Cipher(self._aes, modes.CBC(iv)).encryptor()
        # PKCS#5/7: the cipher holds back the last partial block until the padding completes it.
        ciphertext = encryptor.update(data) + encryptor.update(_PADDING[AES_BLOCK_SIZE - len(data) % AES_BLOCK_SIZE])
        encryptor.finalize()
        return encode_v1(self._key_id, iv, ciphertext)

    def encrypt_stream(self, pieces: Iterable[bytes | memoryview], size: int) -> Iterator[bytes]:
        """:meth:`encrypt` of the concatenation of ``pieces`` (``size`` bytes in all),
        produced piece by piece: the outputs concatenate to exactly the envelope
        :meth:`encrypt` returns.

        Only pieces the size of the inputs are ever held, so a megabyte payload chunk
        needs no megabyte-sized temporaries (each would be fresh memory from the OS,
        page-faulted in, costing more than the encryption itself).
        """
        if self._aes is None:
            raise MslCryptoException(MslError.ENCRYPT_NOT_SUPPORTED, "no encryption key")
        iv = self._random.random_bytes(AES_BLOCK_SIZE)
        if not size:
            yield encode_v1(self._key_id, iv, b"")
            return
        pad = AES_BLOCK_SIZE - size % AES_BLOCK_SIZE
        head, _, tail = encode_v1_parts(self._key_id, iv, b"")
        encryptor = Cipher(self._aes, modes.CBC(iv)).encryptor()
        fed = 0

        def ciphertext() -> Iterator[bytes]:
            nonlocal fed
            for piece in pieces:
                fed += len(piece)
                yield encryptor.update(piece)
            if fed != size:
                raise MslInternalException(f"encrypt_stream: {fed} bytes fed, {size} announced")
            yield encryptor.update(_PADDING[pad])
            yield encryptor.finalize()

        yield head
        yield from b64encode_stream(ciphertext())
        yield tail

    def signer(self) -> hmac.HMAC | cmac.CMAC:
        """A fresh MAC under the signature key: ``update`` it with the data piece by
        piece; ``finalize`` gives what :meth:`sign` of the whole would."""
        if self._mac_template is None:
            raise MslCryptoException(MslError.SIGN_NOT_SUPPORTED, "no signature key")
        return self._mac_template.copy()

    def verify_signer(self, mac: hmac.HMAC | cmac.CMAC, signature: bytes) -> bool:
        """:meth:`verify` for data fed to ``mac`` (from :meth:`signer`) piece by piece."""
        return std_hmac.compare_digest(mac.finalize(), _tag(signature))

    def decrypt_stream(self, iv: bytes, pieces: Iterable[bytes]) -> Iterator[bytes]:
        """The plaintext of AES-CBC ``pieces`` (any split) under ``iv``, piece by piece,
        unpadded: the last piece is produced only once the padding has been checked.

        A ciphertext that is not a whole number of blocks raises
        CIPHERTEXT_ILLEGAL_BLOCK_SIZE, a wrong IV INVALID_ALGORITHM_PARAMS, bad padding
        CIPHERTEXT_BAD_PADDING, as :meth:`decrypt` would; an empty one (which
        :meth:`decrypt` takes as empty plaintext) is CIPHERTEXT_ILLEGAL_BLOCK_SIZE too.
        """
        if self._aes is None:
            raise MslCryptoException(MslError.DECRYPT_NOT_SUPPORTED, "no encryption key")
        if len(iv) != AES_BLOCK_SIZE:
            raise MslCryptoException(MslError.INVALID_ALGORITHM_PARAMS, f"{len(iv)}-byte IV")
        decryptor = Cipher(self._aes, modes.CBC(iv)).decryptor()
        held = b""
        size = 0
        for piece in pieces:
            size += len(piece)
            out = decryptor.update(piece)
            if out:
                if held:
                    yield held
                held = out
        if not size or size % AES_BLOCK_SIZE:
            raise MslCryptoException(MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE, f"{size}-byte ciphertext")
        decryptor.finalize()
        yield held[:-AES_BLOCK_SIZE] + _unpad(held[-AES_BLOCK_SIZE:])

    def decrypt(self, data: bytes) -> bytes:
        """Open a V1 envelope (forced V1, like the reference; the key ID is not checked)."""
        plain, size = self.decrypt_padded(data)
        return plain[:size] if type(plain) is bytes else bytes(memoryview(plain)[:size])

    def decrypt_padded(self, data: bytes) -> tuple[bytes | bytearray, int]:
        """:meth:`decrypt`, but the plaintext is returned in the buffer it was decrypted
        into, its (checked) padding still attached, with the plaintext's length: a
        caller reading a large plaintext in place (``plain[:size]``) is spared a copy."""
        if self._aes is None:
            raise MslCryptoException(MslError.DECRYPT_NOT_SUPPORTED, "no encryption key")
        return self.decrypt_envelope(CiphertextEnvelope.parse(data, EnvelopeVersion.V1))

    def decrypt_envelope(self, envelope: CiphertextEnvelope) -> tuple[bytes | bytearray, int]:
        """:meth:`decrypt_padded` of an envelope already parsed (so a caller can let go of
        the envelope's encoding before the plaintext buffer is allocated)."""
        if self._aes is None:
            raise MslCryptoException(MslError.DECRYPT_NOT_SUPPORTED, "no encryption key")
        return self._decrypt_raw(envelope.iv, envelope.ciphertext)

    def _decrypt_raw(self, iv: bytes | None, ciphertext: bytes) -> tuple[bytes | bytearray, int]:
        assert self._aes is not None
        if not ciphertext:
            return b"", 0
        if iv is None:
            raise MslCryptoException(MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR, "missing IV")
        if len(iv) != AES_BLOCK_SIZE:
            raise MslCryptoException(MslError.INVALID_ALGORITHM_PARAMS, f"{len(iv)}-byte IV")
        if len(ciphertext) % AES_BLOCK_SIZE:
            raise MslCryptoException(MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE, f"{len(ciphertext)}-byte ciphertext")
        decryptor = Cipher(self._aes, modes.CBC(iv)).decryptor()
        plain: bytes | bytearray
        if len(ciphertext) <= _IN_PLACE_THRESHOLD:
            plain = decryptor.update(ciphertext)
            size = len(plain)
        else:
            # Decrypt into one buffer: update() of a large input costs several times
            # more, its output being fresh memory, page-faulted in.
            plain = bytearray(len(ciphertext) + AES_BLOCK_SIZE - 1)  # update_into's slack
            size = decryptor.update_into(ciphertext, plain)
        decryptor.finalize()
        # The unpadder sees only the last block, which holds the padding (it checks it
        # and says how much of the block is data), so the bulk is never copied.
        return plain, size - AES_BLOCK_SIZE + len(_unpad(bytes(plain[size - AES_BLOCK_SIZE : size])))

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
        return std_hmac.compare_digest(mac.finalize(), _tag(signature))


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

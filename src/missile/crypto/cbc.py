"""AES-CBC with PKCS#5 padding, whole or streamed (crypto.md §5).

One implementation of the cipher MSL's symmetric contexts use, shared by
:class:`~missile.crypto.symmetric.SymmetricCryptoContext` (whole buffers) and its payload
chunk codec (:mod:`missile.crypto.symmetric_chunks`, which streams large chunks), so that
both report the same errors for the same input.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from missile.errors import MslCryptoException, MslError, MslInternalException

__all__ = ["AES_BLOCK_SIZE", "CbcKey", "decrypt", "decrypt_into", "encrypt", "encrypt_stream", "pad"]

AES_BLOCK_SIZE = 16
#: Ciphertexts up to this size are decrypted with update() (cheapest for small ones);
#: larger ones into one preallocated buffer, since update()'s output of a large input is
#: fresh memory, page-faulted in, which costs several times the decryption.
_IN_PLACE_THRESHOLD = 64 * 1024
#: Ciphertexts up to this size are decrypted by a :class:`CbcKey` with its reused ECB
#: decryptor (see there); the XOR of the chaining blocks is done on Python integers,
#: cheaper than setting up a cipher below a few kilobytes and dearer above.
_REUSE_LIMIT = 4096
#: Plaintexts up to this size are encrypted by a :class:`CbcKey` with its reused CBC
#: encryptor (see there), which copies the plaintext twice: below it the copies cost less
#: than setting up a cipher (a quarter of the time at 200 bytes, half at 16 KiB,
#: measured); above it they cost as much.
_ENCRYPT_REUSE_LIMIT = 16 * 1024
#: PKCS#5/7 padding by length: n bytes of value n (1 to 16).
_PADDING = tuple(bytes((n,)) * n for n in range(AES_BLOCK_SIZE + 1))


def pad(size: int) -> bytes:
    """The PKCS#5 padding that follows ``size`` bytes of plaintext."""
    return _PADDING[AES_BLOCK_SIZE - size % AES_BLOCK_SIZE]


def encrypt(aes: algorithms.AES, iv: bytes, data: bytes | memoryview) -> bytes:
    """AES-CBC/PKCS#5 of non-empty ``data`` under ``iv``."""
    encryptor = Cipher(aes, modes.CBC(iv)).encryptor()
    # The cipher holds back the last partial block until the padding completes it.
    ciphertext = encryptor.update(data) + encryptor.update(pad(len(data)))
    encryptor.finalize()
    return ciphertext


def encrypt_stream(aes: algorithms.AES, iv: bytes, pieces: Iterable[bytes | memoryview], size: int) -> Iterator[bytes]:
    """:func:`encrypt` of the concatenation of ``pieces`` (``size`` bytes in all, not
    zero), piece by piece: only pieces the size of the inputs are ever held."""
    encryptor = Cipher(aes, modes.CBC(iv)).encryptor()
    fed = 0
    for piece in pieces:
        fed += len(piece)
        yield encryptor.update(piece)
    if fed != size:
        raise MslInternalException(f"encrypt_stream: {fed} bytes fed, {size} announced")
    yield encryptor.update(pad(size))
    yield encryptor.finalize()


def _unpad(block: bytes) -> bytes:
    """The data in the last plaintext block, its PKCS#5 padding checked and removed
    (1 to 16 bytes, each the padding's length)."""
    n = block[-1]
    if not 0 < n <= AES_BLOCK_SIZE or not block.endswith(_PADDING[n]):
        raise MslCryptoException(MslError.CIPHERTEXT_BAD_PADDING, "invalid padding")
    return block[:-n]


def _check(iv: bytes | None, size: int) -> None:
    if iv is None:
        raise MslCryptoException(MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR, "missing IV")
    if len(iv) != AES_BLOCK_SIZE:
        raise MslCryptoException(MslError.INVALID_ALGORITHM_PARAMS, f"{len(iv)}-byte IV")
    if size % AES_BLOCK_SIZE:
        raise MslCryptoException(MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE, f"{size}-byte ciphertext")


def decrypt(aes: algorithms.AES, iv: bytes | None, ciphertext: bytes | memoryview) -> tuple[bytes | bytearray, int]:
    """The plaintext of ``ciphertext`` in the buffer it was decrypted into, its (checked)
    padding still attached, and the plaintext's length: a caller reading a large
    plaintext in place (``plain[:size]``) is spared a copy. An empty ciphertext is an
    empty plaintext (as in the reference)."""
    if not ciphertext:
        return b"", 0
    _check(iv, len(ciphertext))
    assert iv is not None
    decryptor = Cipher(aes, modes.CBC(iv)).decryptor()
    plain: bytes | bytearray
    if len(ciphertext) <= _IN_PLACE_THRESHOLD:
        plain = decryptor.update(ciphertext)
        size = len(plain)
    else:
        plain = bytearray(len(ciphertext) + AES_BLOCK_SIZE - 1)  # update_into's slack
        size = decryptor.update_into(ciphertext, plain)
    decryptor.finalize()
    # The unpadder sees only the last block, so the bulk is never copied.
    return plain, size - AES_BLOCK_SIZE + len(_unpad(bytes(plain[size - AES_BLOCK_SIZE : size])))


def decrypt_into(aes: algorithms.AES, iv: bytes, pieces: Iterable[bytes | memoryview], out: bytearray) -> int:
    """Decrypt AES-CBC ``pieces`` (any split) under ``iv`` into ``out`` (at least the
    ciphertext's size plus 15 bytes, :meth:`CipherContext.update_into`'s slack) and
    return the plaintext's size, its padding checked: a caller with a buffer of its own
    reads a large plaintext without any fresh memory. Errors are :func:`decrypt`'s; an
    empty ciphertext is CIPHERTEXT_ILLEGAL_BLOCK_SIZE here."""
    _check(iv, 0)
    decryptor = Cipher(aes, modes.CBC(iv)).decryptor()
    view = memoryview(out)
    fed = size = 0
    for piece in pieces:
        fed += len(piece)
        if fed + AES_BLOCK_SIZE - 1 > len(out):
            raise MslInternalException(f"decrypt_into: {fed} bytes into a {len(out)}-byte buffer")
        size += decryptor.update_into(piece, view[size:])
    if not fed or fed % AES_BLOCK_SIZE:
        raise MslCryptoException(MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE, f"{fed}-byte ciphertext")
    decryptor.finalize()
    return size - AES_BLOCK_SIZE + len(_unpad(bytes(view[size - AES_BLOCK_SIZE : size])))


class CbcKey:
    """An AES key for CBC that encrypts and decrypts small buffers without setting up a cipher.

    Setting up a CBC cipher (``Cipher(...).encryptor()`` or ``.decryptor()``) costs about
    as much as everything else in sealing or opening a small payload chunk. A key keeps
    one cipher of each kind and works with CBC's definition: each ciphertext block is the
    raw block cipher of the plaintext block XORed with the previous ciphertext block (the
    IV for the first).

    - Decrypting, one ECB decryptor (stateless across calls of whole blocks); the XOR
      with the chaining blocks is done on Python integers.
    - Encrypting, one CBC encryptor that is never finalised and is only ever fed whole
      blocks, so between calls its chaining value is the last ciphertext block it wrote.
      A message under ``iv`` has its first block XORed with ``iv`` and with that block
      (which the encryptor XORs in again), so the output is exactly CBC under ``iv``.
      The chaining value is the tail of a ciphertext already handed out: nothing secret.

    Larger buffers, and calls while another thread holds the cipher, use the module's
    functions; the results and errors are the same (tested).
    """

    __slots__ = ("_chain", "_decrypt_lock", "_ecb", "_encrypt_lock", "_encryptor", "aes")

    def __init__(self, aes: algorithms.AES) -> None:
        self.aes = aes
        self._ecb = Cipher(aes, modes.ECB()).decryptor()
        self._decrypt_lock = threading.Lock()
        self._encryptor = _chained_encryptor(aes)
        self._chain = 0  # the encryptor's chaining value, as a little-endian integer
        self._encrypt_lock = threading.Lock()

    def __repr__(self) -> str:
        return "CbcKey(...)"

    def encrypt(self, iv: bytes, data: bytes | memoryview) -> bytes:
        """:func:`encrypt` under this key."""
        size = len(data)
        if not size or size > _ENCRYPT_REUSE_LIMIT or len(iv) != AES_BLOCK_SIZE:
            return encrypt(self.aes, iv, data)
        if not self._encrypt_lock.acquire(blocking=False):
            return encrypt(self.aes, iv, data)
        try:
            padded = b"".join((data, pad(size)))
            first = int.from_bytes(padded[:AES_BLOCK_SIZE], "little") ^ int.from_bytes(iv, "little") ^ self._chain
            ciphertext = self._encryptor.update(first.to_bytes(AES_BLOCK_SIZE, "little") + padded[AES_BLOCK_SIZE:])
            self._chain = int.from_bytes(ciphertext[-AES_BLOCK_SIZE:], "little")
        except BaseException:
            # Interrupted between feeding the encryptor and noting its chaining value:
            # start over rather than ever chain from a wrong value.
            self._encryptor, self._chain = _chained_encryptor(self.aes), 0
            raise
        finally:
            self._encrypt_lock.release()
        return ciphertext

    def encrypt_pieces(self, iv: bytes, pieces: Sequence[bytes | memoryview], size: int) -> list[bytes]:
        """The ciphertext of the concatenation of ``pieces`` (``size`` bytes, not zero), in
        pieces: small plaintexts joined and encrypted whole by :meth:`encrypt`, larger ones
        by :func:`encrypt_stream`, so that a large piece is never copied."""
        if size <= _ENCRYPT_REUSE_LIMIT:
            plaintext = b"".join(pieces)
            if len(plaintext) != size:
                raise MslInternalException(f"encrypt_pieces: {len(plaintext)} bytes, {size} announced")
            return [self.encrypt(iv, plaintext)]
        return list(encrypt_stream(self.aes, iv, pieces, size))

    def decrypt(self, iv: bytes | None, ciphertext: bytes | memoryview) -> tuple[bytes | bytearray, int]:
        """:func:`decrypt` under this key."""
        size = len(ciphertext)
        if not size or size > _REUSE_LIMIT:
            return decrypt(self.aes, iv, ciphertext)
        _check(iv, size)
        assert iv is not None
        if not self._decrypt_lock.acquire(blocking=False):
            return decrypt(self.aes, iv, ciphertext)
        try:
            blocks = self._ecb.update(ciphertext)
        finally:
            self._decrypt_lock.release()
        chain = int.from_bytes(iv + bytes(ciphertext[: size - AES_BLOCK_SIZE]), "little")
        plain = (int.from_bytes(blocks, "little") ^ chain).to_bytes(size, "little")
        return plain, size - AES_BLOCK_SIZE + len(_unpad(plain[-AES_BLOCK_SIZE:]))


def _chained_encryptor(aes: algorithms.AES) -> CipherContext:
    """A CBC encryptor whose chaining value is zero (an all-zero IV) until first used."""
    return Cipher(aes, modes.CBC(bytes(AES_BLOCK_SIZE))).encryptor()

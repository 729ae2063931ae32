"""AES-CBC (missile.crypto.cbc): a CbcKey's reused ECB decryptor gives exactly what a
freshly set-up CBC decryptor gives, result for result and error for error."""

from __future__ import annotations

import os
import threading

import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from missile.crypto import cbc
from missile.errors import MslError, MslException


def _outcome(fn: object, *args: object) -> object:
    try:
        plain, size = fn(*args)  # type: ignore[operator]
    except MslException as exc:
        return exc.error
    return bytes(plain[:size])


KEY = cbc.CbcKey(algorithms.AES(bytes(range(16))))


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=5000),
    iv=st.binary(min_size=16, max_size=16) | st.binary(max_size=20) | st.none(),
    garbage=st.booleans(),
)
def test_reused_decryptor_equals_a_fresh_one(data: bytes, iv: bytes | None, garbage: bool) -> None:
    if garbage or not data:
        ciphertext = data  # any length, any padding
    else:
        ciphertext = cbc.encrypt(KEY.aes, iv if iv is not None and len(iv) == 16 else bytes(16), data)
    assert _outcome(KEY.decrypt, iv, ciphertext) == _outcome(cbc.decrypt, KEY.aes, iv, ciphertext)
    if not garbage and data and iv is not None and len(iv) == 16:
        assert _outcome(KEY.decrypt, iv, memoryview(ciphertext)) == data


def test_round_trips_at_every_small_size() -> None:
    iv = os.urandom(16)
    for size in range(1, 4200, 7):
        data = os.urandom(size)
        plain, n = KEY.decrypt(iv, cbc.encrypt(KEY.aes, iv, data))
        assert plain[:n] == data


def test_concurrent_use_from_threads() -> None:
    """Threads contend for the one ECB decryptor; whoever does not get it sets up its own."""
    iv = os.urandom(16)
    cases = [(d, cbc.encrypt(KEY.aes, iv, d)) for d in (os.urandom(n) for n in (1, 100, 1000, 3000))]
    failures: list[str] = []

    def work() -> None:
        for _ in range(300):
            for data, ciphertext in cases:
                plain, n = KEY.decrypt(iv, ciphertext)
                if plain[:n] != data:
                    failures.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures and not any(t.is_alive() for t in threads)


def test_the_key_stays_out_of_the_repr() -> None:
    assert repr(KEY) == "CbcKey(...)"


@pytest.mark.parametrize("size", [15, 17, 4095, 4097])
def test_stream_refuses_wrong_sizes(size: int) -> None:
    with pytest.raises(MslException):
        b"".join(cbc.decrypt_stream(KEY.aes, bytes(16), [os.urandom(size)]))


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=16, max_size=16)
    | st.tuples(st.binary(max_size=15), st.integers(1, 16)).map(
        lambda t: (bytes(16) + t[0] + bytes((t[1],)) * t[1])[-16:]
    )
)
def test_padding_check_equals_pkcs7(block: bytes) -> None:
    """The padding check agrees with cryptography's PKCS7 unpadder on any last block."""
    from cryptography.hazmat.primitives import padding

    unpadder = padding.PKCS7(128).unpadder()
    try:
        expected: object = unpadder.update(block) + unpadder.finalize()
    except ValueError:
        expected = MslError.CIPHERTEXT_BAD_PADDING
    try:
        got: object = cbc._unpad(block)
    except MslException as exc:
        got = exc.error
    assert got == expected

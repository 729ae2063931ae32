"""AES-CBC (missile.crypto.cbc): a CbcKey's reused ECB decryptor gives exactly what a
freshly set-up CBC decryptor gives, result for result and error for error."""

from __future__ import annotations

import itertools
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


@pytest.mark.parametrize("size", [0, 15, 17, 4095, 4097])
def test_decrypt_into_refuses_wrong_sizes(size: int) -> None:
    with pytest.raises(MslException) as caught:
        cbc.decrypt_into(KEY.aes, bytes(16), [os.urandom(size)], bytearray(size + 16))
    assert caught.value.error is MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE


def test_decrypt_into_refuses_a_short_buffer() -> None:
    with pytest.raises(MslException):
        cbc.decrypt_into(KEY.aes, bytes(16), [os.urandom(64)], bytearray(64))


def _into_outcome(iv: bytes, pieces: list[bytes]) -> object:
    out = bytearray(sum(map(len, pieces)) + 15)
    try:
        size = cbc.decrypt_into(KEY.aes, iv, pieces, out)
    except MslException as exc:
        return exc.error
    return bytes(out[:size])


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([0, 1, 2, 15, 16, 17, 31, 32, 33, 200]).flatmap(
        lambda blocks: st.tuples(
            st.binary(min_size=16, max_size=16),
            st.binary(min_size=blocks * 16, max_size=blocks * 16)
            | st.binary(max_size=40)
            | st.binary(max_size=40).map(lambda d: cbc.encrypt(KEY.aes, bytes(16), d) if d else d),
            st.lists(st.integers(0, 4000), max_size=4),
        )
    )
)
def test_decrypt_into_any_split_equals_decrypt(case: tuple[bytes, bytes, list[int]]) -> None:
    """Decrypting pieces (any split) into a buffer gives :func:`cbc.decrypt`'s result or
    error, but that an empty ciphertext is refused."""
    iv, ciphertext, cuts = case
    bounds = sorted({0, len(ciphertext), *(c % (len(ciphertext) + 1) for c in cuts)})
    pieces = [ciphertext[a:b] for a, b in itertools.pairwise(bounds)]
    expected = _outcome(cbc.decrypt, KEY.aes, iv, ciphertext) if ciphertext else MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE
    assert _into_outcome(iv, pieces) == expected


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


# -- the reused encryptor ---------------------------------------------------------------


def _encrypt_outcome(fn: object, *args: object) -> object:
    try:
        return fn(*args)  # type: ignore[operator]
    except (MslException, ValueError) as exc:
        return type(exc)


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(
        st.tuples(
            st.binary(max_size=17000),
            st.binary(min_size=16, max_size=16) | st.binary(max_size=20),
            st.booleans(),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_reused_encryptor_equals_a_fresh_one(messages: list[tuple[bytes, bytes, bool]]) -> None:
    """Message after message (the chaining value carried over), any size, any IV."""
    key = cbc.CbcKey(algorithms.AES(bytes(range(16))))
    for data, iv, view in messages:
        given_data = memoryview(data) if view else data
        assert _encrypt_outcome(key.encrypt, iv, given_data) == _encrypt_outcome(cbc.encrypt, key.aes, iv, data)


def test_encrypts_at_every_size_up_to_past_the_reuse_limit() -> None:
    key = cbc.CbcKey(algorithms.AES(os.urandom(16)))
    for size in [*range(1, 600), *range(16 * 1024 - 40, 16 * 1024 + 40)]:
        iv, data = os.urandom(16), os.urandom(size)
        ciphertext = key.encrypt(iv, data)
        assert ciphertext == cbc.encrypt(key.aes, iv, data)
        plain, n = key.decrypt(iv, ciphertext)
        assert plain[:n] == data


def test_encryptor_concurrent_use_from_threads() -> None:
    """Threads contend for the one encryptor; whoever does not get it sets up its own."""
    key = cbc.CbcKey(algorithms.AES(os.urandom(16)))
    inputs = [(os.urandom(16), os.urandom(n)) for n in (1, 100, 3000)]
    cases = [(iv, data, cbc.encrypt(key.aes, iv, data)) for iv, data in inputs]
    failures: list[str] = []

    def work() -> None:
        for _ in range(300):
            for iv, data, ciphertext in cases:
                if key.encrypt(iv, data) != ciphertext:
                    failures.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures and not any(t.is_alive() for t in threads)


class _Interrupted:
    """An encryptor interrupted mid-call (as by a signal between feeding it and noting
    its chaining value)."""

    def update(self, data: bytes) -> bytes:
        raise KeyboardInterrupt


def test_an_interrupted_encryptor_is_replaced() -> None:
    key = cbc.CbcKey(algorithms.AES(os.urandom(16)))
    iv = os.urandom(16)
    key.encrypt(iv, b"first")
    key._encryptor = _Interrupted()  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        key.encrypt(iv, b"second")
    assert key.encrypt(iv, b"third") == cbc.encrypt(key.aes, iv, b"third")
    assert key.encrypt(iv, b"fourth") == cbc.encrypt(key.aes, iv, b"fourth")


@pytest.mark.parametrize("sizes", [(0, 1, 0), (10, 200, 7), (3, 16 * 1024 - 3, 0), (5, 16 * 1024, 5), (7, 70000, 9)])
def test_encrypt_pieces_equals_the_stream(sizes: tuple[int, int, int]) -> None:
    pieces = [os.urandom(n) for n in sizes]
    iv = os.urandom(16)
    got = KEY.encrypt_pieces(iv, pieces, sum(sizes))
    assert b"".join(got) == b"".join(cbc.encrypt_stream(KEY.aes, iv, pieces, sum(sizes)))


@pytest.mark.parametrize("size", [100, 70000])
def test_encrypt_pieces_refuses_a_wrong_size(size: int) -> None:
    with pytest.raises(MslException):
        KEY.encrypt_pieces(bytes(16), [os.urandom(size)], size + 1)

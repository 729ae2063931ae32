"""Tests for missile.encoding.compression (encoding.md §8)."""

from __future__ import annotations

import gzip
import io
import random
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from missile.encoding.compression import (
    DEFAULT_MAX_DEFLATE_RATIO,
    CompressionAlgorithm,
    choose_algorithm,
    compress,
    decompress,
    lzw_compress,
    lzw_decompress,
)
from missile.errors import MslEncodingException, MslError

GZIP = CompressionAlgorithm.GZIP
LZW = CompressionAlgorithm.LZW


# --------------------------------------------------------------------------------------------
# Independent oracle: a literal transcription of the §8.2 pseudocode using bit strings.
# --------------------------------------------------------------------------------------------


def oracle_codes(data: bytes) -> list[tuple[int, int]]:
    """Return the (code, width) list of the §8.2 compressor."""
    table = {bytes([b]): b for b in range(256)}
    width = 8
    codes: list[tuple[int, int]] = []
    w = b""
    for c in data:
        wc = w + bytes([c])
        if wc in table:
            w = wc
            continue
        codes.append((table[w], width))
        new = len(table)
        if new >> width != 0:
            width += 1
        table[wc] = new
        w = bytes([c])
    if w:
        codes.append((table[w], width))
    return codes


def pack(codes: list[tuple[int, int]]) -> bytes:
    """MSB-first packing with zero padding of the final byte (§8.2)."""
    bits = "".join(format(code, f"0{width}b") for code, width in codes)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))


def assert_uncompression_error(excinfo: pytest.ExceptionInfo[MslEncodingException]) -> None:
    assert excinfo.value.error is MslError.UNCOMPRESSION_ERROR


def low_entropy(rng: random.Random, size: int, alphabet: int) -> bytes:
    return bytes(rng.randrange(alphabet) for _ in range(size))


# --------------------------------------------------------------------------------------------
# LZW vectors and format
# --------------------------------------------------------------------------------------------

SPEC_VECTORS = [
    (b"TOBEORNOTTOBEORTOBEORNOT", "54279088a4f291389e548040a090981c160e"),
    (b"a" * 60, "61804060503824160d078440c0"),
    (b"a", "61"),
    (b"", ""),
    # From the reference's LZWOutputStreamTest.
    (bytes.fromhex("6667"), "663380"),
    (bytes.fromhex("61d7b1"), "616bac40"),
]


@pytest.mark.parametrize(("plain", "hex_lzw"), SPEC_VECTORS)
def test_lzw_vectors(plain: bytes, hex_lzw: str) -> None:
    assert lzw_compress(plain).hex() == hex_lzw
    assert lzw_decompress(bytes.fromhex(hex_lzw), len(plain)) == plain


def test_lzw_vector_via_public_api() -> None:
    plain = b"TOBEORNOTTOBEORTOBEORNOT"
    packed = compress(LZW, plain)
    assert packed == bytes.fromhex("54279088a4f291389e548040a090981c160e")
    assert decompress(LZW, packed) == plain
    assert compress("LZW", plain) == packed


def test_lzw_width_grows_past_12_bits_and_matches_oracle() -> None:
    rng = random.Random(0x4D534C)
    data = low_entropy(rng, 40_000, 3)
    codes = oracle_codes(data)
    assert max(width for _, width in codes) >= 13
    assert [w for _, w in codes[:3]] == [8, 9, 9]
    packed = lzw_compress(data)
    assert packed == pack(codes)
    assert lzw_decompress(packed, len(data)) == data


def test_lzw_width_transition_at_512_entries() -> None:
    # 300 distinct-ish random bytes produce > 256 codes; check the 9 -> 10 bit step.
    rng = random.Random(7)
    data = bytes(rng.randrange(256) for _ in range(600))
    codes = oracle_codes(data)
    widths = [w for _, w in codes]
    # Code i (i >= 1) is emitted after entry 255 + i was added: 10 bits once entry 512 exists.
    assert widths[256] == 9
    assert widths[257] == 10
    assert lzw_compress(data) == pack(codes)
    assert lzw_decompress(pack(codes), len(data)) == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_lzw_matches_oracle_on_arbitrary_bytes(data: bytes) -> None:
    assert lzw_compress(data) == pack(oracle_codes(data))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000))
def test_lzw_round_trip_arbitrary(data: bytes) -> None:
    assert lzw_decompress(lzw_compress(data), len(data)) == data


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(30_000, 60_000),
    alphabet=st.integers(4, 8),
    chunk=st.binary(min_size=1, max_size=50),
)
def test_lzw_round_trip_repetitive_wide_codes(seed: int, size: int, alphabet: int, chunk: bytes) -> None:
    rng = random.Random(seed)
    data = low_entropy(rng, size, alphabet) + chunk * rng.randrange(1, 2000)
    codes = oracle_codes(data)
    assert codes[-1][1] > 12  # dictionary grew past 4096 entries
    packed = lzw_compress(data)
    assert packed == pack(codes)
    assert lzw_decompress(packed, len(data)) == data
    assert decompress(LZW, packed, max_ratio=10**6) == data


@settings(max_examples=50, deadline=None)
@given(byte=st.integers(0, 255), size=st.integers(1, 200_000))
def test_lzw_round_trip_single_byte_runs(byte: int, size: int) -> None:
    data = bytes([byte]) * size
    packed = lzw_compress(data)
    if size <= 20_000:
        assert packed == pack(oracle_codes(data))
    assert lzw_decompress(packed, size) == data


def test_lzw_trailing_padding_is_ignored() -> None:
    # 'a' then code 256 ("aa"): 8 + 9 bits, padded with 7 zero bits.
    assert lzw_decompress(pack([(0x61, 8), (256, 9)]), 10) == b"aaa"
    # Trailing bits fewer than the current width are padding, even if not zero.
    assert pack([(0x61, 8), (256, 9)]) == b"\x61\x80\x00"
    assert lzw_decompress(b"\x61\x80\x7f", 10) == b"aaa"


def test_lzw_kwkwk_case() -> None:
    # "aaaa": codes 'a', 256 (not yet in the decoder's dictionary), 'a'.
    codes = oracle_codes(b"aaaa")
    assert codes == [(0x61, 8), (256, 9), (0x61, 9)]
    assert lzw_decompress(pack(codes), 4) == b"aaaa"


@pytest.mark.parametrize("bad_code", [257, 300, 511])
def test_lzw_invalid_code_raises(bad_code: int) -> None:
    with pytest.raises(MslEncodingException) as excinfo:
        lzw_decompress(pack([(0x61, 8), (bad_code, 9)]), 1000)
    assert_uncompression_error(excinfo)


def test_lzw_invalid_code_later_in_stream() -> None:
    codes = oracle_codes(b"TOBEORNOTTOBEORTOBEORNOT")
    # At this point the dictionary holds 256 + len(codes) - 1 entries; next valid max is that.
    next_index = 256 + len(codes) - 1
    width = codes[-1][1]
    good = pack([*codes, (next_index, width)])
    assert lzw_decompress(good, 100).startswith(b"TOBEORNOTTOBEORTOBEORNOT")
    with pytest.raises(MslEncodingException) as excinfo:
        lzw_decompress(pack([*codes, (next_index + 1, width)]), 100)
    assert_uncompression_error(excinfo)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_lzw_garbage_never_crashes(data: bytes) -> None:
    try:
        out = decompress(LZW, data)
    except MslEncodingException as e:
        assert e.error is MslError.UNCOMPRESSION_ERROR
    else:
        assert len(out) <= DEFAULT_MAX_DEFLATE_RATIO * len(data)


def test_lzw_max_size_enforced_exactly() -> None:
    data = b"TOBEORNOTTOBEORTOBEORNOT"
    packed = lzw_compress(data)
    assert lzw_decompress(packed, len(data)) == data
    with pytest.raises(MslEncodingException) as excinfo:
        lzw_decompress(packed, len(data) - 1)
    assert_uncompression_error(excinfo)
    with pytest.raises(MslEncodingException):
        lzw_decompress(b"a", 0)
    assert lzw_decompress(b"", 0) == b""


def test_lzw_bomb_is_capped() -> None:
    plain = b"\x00" * 2_000_000
    bomb = lzw_compress(plain)
    ratio = len(plain) / len(bomb)
    assert ratio > DEFAULT_MAX_DEFLATE_RATIO  # ~2000 codes expand quadratically
    with pytest.raises(MslEncodingException) as excinfo:
        decompress(LZW, bomb)
    assert_uncompression_error(excinfo)
    needed = -(-len(plain) // len(bomb))  # ceil
    assert decompress(LZW, bomb, max_ratio=needed) == plain
    with pytest.raises(MslEncodingException):
        decompress(LZW, bomb, max_ratio=needed - 1)
    with pytest.raises(MslEncodingException):
        decompress(LZW, bomb, max_ratio=needed, max_size=len(plain) - 1)


# --------------------------------------------------------------------------------------------
# GZIP
# --------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000))
def test_gzip_round_trip_arbitrary(data: bytes) -> None:
    packed = compress(GZIP, data)
    if packed is None:
        assert not data or len(gzip.compress(data, mtime=0)) >= len(data)
        return
    assert len(packed) < len(data)
    assert packed[:3] == b"\x1f\x8b\x08"
    assert gzip.decompress(packed) == data
    assert decompress(GZIP, packed, max_ratio=10**6) == data


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 200_000), alphabet=st.integers(1, 6))
def test_gzip_round_trip_repetitive(seed: int, size: int, alphabet: int) -> None:
    data = low_entropy(random.Random(seed), size, alphabet)
    packed = compress(GZIP, data)
    if packed is None:
        assert size < 64
        return
    assert decompress(GZIP, packed, max_ratio=10**6) == data


def test_gzip_single_member_output_is_standard() -> None:
    data = b"hello world " * 100
    packed = compress(GZIP, data)
    assert packed is not None
    inflater = zlib.decompressobj(31)
    assert inflater.decompress(packed) == data
    assert inflater.eof
    assert inflater.unused_data == b""


def test_gzip_accepts_python_gzip_with_header_fields() -> None:
    data = b"payload data " * 50
    buf = io.BytesIO()
    with gzip.GzipFile(filename="name.txt", mode="wb", fileobj=buf, mtime=123456) as gz:
        gz.write(data)
    assert buf.getvalue()[3] & 0x08  # FNAME flag set
    assert decompress(GZIP, buf.getvalue()) == data


def test_gzip_concatenated_members() -> None:
    a, b = b"first member " * 20, b"second member " * 20
    stream = gzip.compress(a) + gzip.compress(b)
    assert decompress(GZIP, stream) == a + b


def test_gzip_trailing_non_gzip_bytes_ignored_like_java() -> None:
    data = b"abc" * 100
    assert decompress(GZIP, gzip.compress(data) + b"\x00\x00garbage") == data


def test_gzip_truncated_following_member_rejected() -> None:
    data = b"abc" * 100
    second = gzip.compress(data)
    with pytest.raises(MslEncodingException) as excinfo:
        decompress(GZIP, gzip.compress(data) + second[: len(second) // 2])
    assert_uncompression_error(excinfo)


def test_gzip_truncated_at_every_length_rejected() -> None:
    data = bytes(random.Random(3).randrange(8) for _ in range(3000))
    packed = compress(GZIP, data)
    assert packed is not None
    for cut in range(len(packed)):
        with pytest.raises(MslEncodingException) as excinfo:
            decompress(GZIP, packed[:cut])
        assert_uncompression_error(excinfo)


@pytest.mark.parametrize("offset_from_end", [1, 5, 8])  # ISIZE, CRC-32 bytes
def test_gzip_bad_trailer_rejected(offset_from_end: int) -> None:
    packed = bytearray(gzip.compress(b"checksummed " * 30))
    packed[-offset_from_end] ^= 0x01
    with pytest.raises(MslEncodingException) as excinfo:
        decompress(GZIP, bytes(packed))
    assert_uncompression_error(excinfo)


@pytest.mark.parametrize("blob", [b"not gzip at all", b"\x1f\x8b\x08\x00", b"\x1f\x8b\x09" + b"\x00" * 20])
def test_gzip_corrupt_header_rejected(blob: bytes) -> None:
    with pytest.raises(MslEncodingException) as excinfo:
        decompress(GZIP, blob)
    assert_uncompression_error(excinfo)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500))
def test_gzip_garbage_never_crashes(data: bytes) -> None:
    try:
        decompress(GZIP, b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + data)
    except MslEncodingException as e:
        assert e.error is MslError.UNCOMPRESSION_ERROR


def test_gzip_bomb_is_capped_without_full_allocation() -> None:
    plain_size = 10_000_000
    bomb = gzip.compress(bytes(plain_size), compresslevel=9)
    assert plain_size > DEFAULT_MAX_DEFLATE_RATIO * len(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(MslEncodingException) as excinfo:
            decompress(GZIP, bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_uncompression_error(excinfo)
    cap = DEFAULT_MAX_DEFLATE_RATIO * len(bomb)
    assert peak < 3 * cap + 1_000_000 < plain_size
    needed = -(-plain_size // len(bomb))
    assert decompress(GZIP, bomb, max_ratio=needed) == bytes(plain_size)
    with pytest.raises(MslEncodingException):
        decompress(GZIP, bomb, max_ratio=needed - 1)


def test_gzip_max_size_exact_boundary() -> None:
    data = b"z" * 10_000
    packed = compress(GZIP, data)
    assert packed is not None
    assert decompress(GZIP, packed, max_ratio=10**6, max_size=len(data)) == data
    with pytest.raises(MslEncodingException) as excinfo:
        decompress(GZIP, packed, max_ratio=10**6, max_size=len(data) - 1)
    assert_uncompression_error(excinfo)


def test_gzip_empty_input_rejected() -> None:
    with pytest.raises(MslEncodingException) as excinfo:
        decompress(GZIP, b"")
    assert_uncompression_error(excinfo)


def test_gzip_empty_member_ratio() -> None:
    # A member holding no data inflates to nothing; always within the cap.
    assert decompress(GZIP, gzip.compress(b""), max_ratio=1) == b""


# --------------------------------------------------------------------------------------------
# compress() rules, algorithm names, negotiation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", list(CompressionAlgorithm))
def test_compress_empty_returns_none(algo: CompressionAlgorithm) -> None:
    assert compress(algo, b"") is None


@pytest.mark.parametrize("algo", list(CompressionAlgorithm))
def test_compress_incompressible_returns_none(algo: CompressionAlgorithm) -> None:
    data = random.Random(11).randbytes(4096)
    assert compress(algo, data) is None


def test_compress_not_strictly_shorter_returns_none() -> None:
    assert lzw_compress(b"a") == b"a"  # same length: not strictly shorter
    assert compress(LZW, b"a") is None
    assert compress(GZIP, b"a" * 10) is None  # gzip overhead is 18+ bytes


@pytest.mark.parametrize("algo", list(CompressionAlgorithm))
def test_compress_repetitive_is_used(algo: CompressionAlgorithm) -> None:
    data = b'{"key":"value","n":1}' * 200
    packed = compress(algo, data)
    assert packed is not None and len(packed) < len(data)
    assert decompress(algo, packed) == data


def test_invalid_limits_are_value_errors() -> None:
    packed = lzw_compress(b"abc")
    with pytest.raises(ValueError):
        decompress(LZW, packed, max_ratio=0)
    with pytest.raises(ValueError):
        decompress(GZIP, gzip.compress(b"abc"), max_ratio=-5)
    with pytest.raises(ValueError):
        decompress(LZW, packed, max_size=-1)
    with pytest.raises(ValueError):
        lzw_decompress(packed, -1)


def test_from_wire() -> None:
    assert CompressionAlgorithm.from_wire("GZIP") is GZIP
    assert CompressionAlgorithm.from_wire("LZW") is LZW
    assert GZIP == "GZIP" and LZW.value == "LZW"
    assert [a.value for a in CompressionAlgorithm] == ["GZIP", "LZW"]


@pytest.mark.parametrize("name", ["gzip", "lzw", "DEFLATE", "", " GZIP", "NONE"])
def test_from_wire_unknown(name: str) -> None:
    with pytest.raises(MslEncodingException) as excinfo:
        CompressionAlgorithm.from_wire(name)
    assert excinfo.value.error is MslError.UNIDENTIFIED_COMPRESSION


def test_unknown_algorithm_name_in_api() -> None:
    with pytest.raises(MslEncodingException) as excinfo:
        compress("BZIP2", b"data" * 100)
    assert excinfo.value.error is MslError.UNIDENTIFIED_COMPRESSION
    with pytest.raises(MslEncodingException) as excinfo:
        decompress("BZIP2", b"data")
    assert excinfo.value.error is MslError.UNIDENTIFIED_COMPRESSION


def test_choose_algorithm() -> None:
    assert choose_algorithm([LZW, GZIP]) is GZIP
    assert choose_algorithm([GZIP, LZW]) is GZIP
    assert choose_algorithm(["LZW"]) is LZW
    assert choose_algorithm(["BROTLI", "LZW", "gzip"]) is LZW
    assert choose_algorithm(iter(["GZIP", "ZSTD"])) is GZIP
    assert choose_algorithm([]) is None
    assert choose_algorithm(["ZSTD", "gzip"]) is None

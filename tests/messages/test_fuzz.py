"""Mangled messages only ever fail with an MslException, never with a stray Python error."""

from __future__ import annotations

import base64
import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vectorlib
from missile.errors import MslException
from missile.keyfile import KeyFile
from missile.messages import MessageReader
from missile.profiles import context_from_keyfile

STEMS = ["01_a_psk_request_encrypted", "29_d_mt_uit_servicetokens_request", "31_f_gzip_3chunks",
         "03_c_response_asymmetric_wrapped_rsa", "36_g_error_fail", "53_i_none_request"]
_CACHE: dict[str, tuple[KeyFile, bytes]] = {}


def _vector(stem: str) -> tuple[KeyFile, bytes]:
    if stem not in _CACHE:
        vector = vectorlib.load(stem)
        _CACHE[stem] = (KeyFile.from_dict(vector["keys"]), base64.b64decode(vector["message_b64"]))
    return _CACHE[stem]


def _read(keys: KeyFile, data: bytes) -> None:
    built = context_from_keyfile(keys)
    reader = MessageReader(built.ctx, key_request_data=built.key_request_data, single_message=True)
    reader.feed(data)
    reader.end_of_stream()


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 64)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stem=st.sampled_from(STEMS), mutations=st.lists(mutation, min_size=1, max_size=4))
def test_mangled_messages_raise_only_msl_errors(stem: str, mutations: list[tuple[str, int, int]]) -> None:
    keys, message = _vector(stem)
    data = bytearray(message)
    for kind, where, value in mutations:
        i = where % max(len(data), 1)
        if kind == "flip" and data:
            data[i] ^= value
        elif kind == "cut":
            del data[i:]
        elif kind == "insert":
            data[i:i] = bytes([value])
        elif kind == "delete":
            del data[i : i + value]
    # Any outcome is fine but a non-MSL exception, which would fail the test.
    with contextlib.suppress(MslException):
        _read(keys, bytes(data))

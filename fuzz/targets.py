"""Fuzz targets for missile's parsers, and their seeds derived from ``tests/vectors``.

Every target is a function of one byte string. The contract it checks (issue #8): for
any input a parser either succeeds or raises a typed MSL error, a subclass of
:class:`~missile.errors.MslException`. Any other exception escapes the target and is a
finding. :class:`~missile.errors.MslInternalException` escapes too: it means "a
programming error", which peer input must never be able to cause.

Parsers run against contexts built from the shared vectors' key files (their fixed
clocks keep the vector tokens unexpired), so that inputs reach code behind the
signature checks. Targets whose first input byte is a *selector* (``sel``) pick one of
several vector contexts with it (``data[0] % count``); the rest is the parser's input.

Targets named ``*_headerdata``, ``*_plaintext``, ``*_tokendata``, ``*_sessiondata``,
``*_userdata``, ``*_errordata`` and ``x509_tbs`` are structure-aware: the input is what
the sender would have protected, and the target encrypts and signs it with the vector's
keys, so mutations reach the parsing of decrypted data instead of stopping at a failed
signature. Every input gets a fresh context (:meth:`Case.reset`): no state carries over.

Seeds are extracted at run time (:func:`seeds`) from the vectors: whole messages,
master / user ID / service tokens, key request and response data, entity and user
authentication data, error headers, payloads for the compressors and so on.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import pybase64

import missile.context as msl_context
from missile.crypto.context import CryptoContext
from missile.encoding import (
    EncoderFormat,
    MslObject,
    ObjectStreamDecoder,
    b64decode,
    b64encode,
    b64url_decode,
    decode,
    encode,
)
from missile.encoding.base64 import b64decode_stream, b64encode_stream
from missile.encoding.compression import CompressionAlgorithm, compress, decompress, lzw_compress
from missile.entityauth import ENTITY_AUTH_SCHEMES, EntityAuthData, MtProtectedEntityAuthData, X509EntityAuthData
from missile.entityauth.base import KEY_AUTHDATA
from missile.errors import MslEncodingException, MslError, MslException, MslInternalException
from missile.keyfile import KeyFile
from missile.keyx.base import KEY_REQUEST_SCHEMES, KeyRequestData, parse_key_response_data
from missile.messages import ErrorReceived, HeaderReceived, MessageReader
from missile.messages.error_header import ErrorHeader
from missile.messages.header import MessageHeader, select_header_crypto_context
from missile.messages.payload import PayloadChunk
from missile.profiles import context_from_keyfile
from missile.tokens import MasterToken, ServiceToken, UserIdToken
from missile.tokens.service import select_crypto_context
from missile.userauth.base import USER_AUTH_SCHEMES

__all__ = ["TARGETS", "Target", "cache_private_key_loading", "max_len", "seeds"]

REPO = Path(__file__).resolve().parent.parent
VECTOR_DIR = REPO / "tests" / "vectors"
#: The binary-format vectors (docs/binary-format.md); their stems are used as ``binary/NN_name``.
BINARY_VECTOR_DIR = REPO / "tests" / "vectors-binary"

_INSECURE: frozenset[str] = getattr(msl_context, "INSECURE_SCHEMES", frozenset())

KEYX_SCHEMES = ("ASYMMETRIC_WRAPPED", "SYMMETRIC_WRAPPED", "DIFFIE_HELLMAN", "JWE_LADDER", "JWK_LADDER")


# -- the contract --------------------------------------------------------------------


class InternalErrorFinding(AssertionError):
    """Peer input caused an MslInternalException (a programming error)."""


def _contract(fn: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """Run ``fn``: success and MSL errors are fine; anything else escapes."""

    def run(data: bytes) -> None:
        try:
            fn(data)
        except MslInternalException as exc:
            raise InternalErrorFinding(f"internal error from peer input: {exc!r}") from exc
        except MslException:
            pass

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


# -- vectors and the contexts they describe ------------------------------------------


def cache_private_key_loading() -> None:
    """Load each key file private key once (process-wide; the fuzz worker calls this).

    The vectors share a few RSA keys, and validating one costs ~25 ms, which would
    dominate the fresh context every input gets. Only key files' private keys go
    through this loader (never fuzz input), so caching changes nothing the targets test.
    """
    from cryptography.hazmat.primitives import serialization

    import missile.entityauth.stores as stores

    original = serialization.load_der_private_key
    if getattr(original, "missile_fuzz_cached", False):
        return
    loaded: dict[tuple[bytes, bytes | None], Any] = {}

    def load(data: bytes, password: bytes | None = None, *args: Any, **kwargs: Any) -> Any:
        key = (bytes(data), password)
        if key not in loaded:
            loaded[key] = original(data, password, *args, **kwargs)
        return loaded[key]

    load.missile_fuzz_cached = True  # type: ignore[attr-defined]
    serialization.load_der_private_key = load  # type: ignore[assignment]
    stores.load_der_private_key = load  # type: ignore[attr-defined,assignment]


def stems(lo: int = 1, hi: int = 99) -> list[str]:
    """Vector file stems whose number is in ``lo..hi``."""
    return [p.stem for p in sorted(VECTOR_DIR.glob("[0-9][0-9]_*.json")) if lo <= int(p.name[:2]) <= hi]


MESSAGE_STEMS = stems(1, 56)
ERROR_STEMS = stems(36, 47)
TOKEN_STEMS = stems(57, 63)


@cache
def _vector(stem: str) -> dict[str, Any]:
    path = BINARY_VECTOR_DIR / f"{stem[7:]}.json" if stem.startswith("binary/") else VECTOR_DIR / f"{stem}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@dataclass
class Decoded:
    """What reading a vector's message produced."""

    header_obj: MslObject
    """The (outer) header or error header object, as received."""
    header: MessageHeader | None
    error_header: ErrorHeader | None
    header_crypto: CryptoContext | None
    payload_crypto: CryptoContext | None
    chunks_raw: list[bytes]


class Case:
    """One vector's receiver: its context, sent key requests and service token keys."""

    def __init__(self, stem: str) -> None:
        self.stem = stem
        self.vector = _vector(stem)
        self.keys = KeyFile.from_dict(self.vector["keys"])
        self.reset()
        self.st_contexts: dict[str, CryptoContext] = dict(self.keys.service_token_crypto_contexts())
        msl = self.keys.msl_crypto_context()
        # The issuer's MSL keys (a client context only holds a verify-nothing one).
        self.msl_keys: CryptoContext | None = msl
        b64 = self.vector.get("message_b64")
        self.message: bytes | None = base64.b64decode(b64) if b64 else None
        token_b64 = self.vector.get("token_b64")
        self.token: bytes | None = base64.b64decode(token_b64) if token_b64 else None

    def reset(self, peer_to_peer: bool = False) -> None:
        """A fresh context, so that no input depends on state earlier inputs left behind
        (issuer replay state, stored sessions, ladder wrapping keys, caches)."""
        # The vectors use every scheme, the insecure ones (NONE, JWK_RSAES) included.
        overrides: dict[str, Any] = {"allowed_insecure_schemes": _INSECURE} if _INSECURE else {}
        built = context_from_keyfile(self.keys, peer_to_peer=peer_to_peer, **overrides)
        self.ctx = built.ctx
        self.key_request_data: list[KeyRequestData] = list(built.key_request_data)

    def reader(self, peer_to_peer: bool = False) -> MessageReader:
        self.reset(peer_to_peer)
        return MessageReader(
            self.ctx,
            service_token_contexts=self.st_contexts,
            key_request_data=self.key_request_data,
            single_message=True,
        )

    def read(self, message: bytes, split: int = 0, peer_to_peer: bool = False) -> None:
        """Read ``message`` completely, fed whole or in ``split``-byte pieces, by the
        vector's receiver (or by that receiver as a peer in a peer-to-peer network)."""
        reader = self.reader(peer_to_peer)
        if split <= 0:
            reader.feed(message)
        else:
            for i in range(0, len(message), split):
                reader.feed(message[i : i + split])
        reader.end_of_stream()

    @cached_property
    def decoded(self) -> Decoded | None:
        """The vector's message as read by missile (None for token vectors)."""
        if self.message is None:
            return None
        objects = ObjectStreamDecoder()
        objects.feed(self.message)
        raws: list[bytes] = []
        while (raw := objects.next_raw()) is not None:
            raws.append(raw)
        reader = self.reader()
        events = reader.feed(self.message)
        events.extend(reader.end_of_stream())
        header = error = None
        header_crypto = payload_crypto = None
        first = events[0]
        if isinstance(first, HeaderReceived):
            header = first.header
            header_crypto = header.crypto_context
            payload_crypto = first.payload_crypto_context
        elif isinstance(first, ErrorReceived):
            error = first.error_header
        return Decoded(decode(raws[0]), header, error, header_crypto, payload_crypto, raws[1:])

    def payload_chunks(self) -> list[bytes]:
        """Decrypted plaintexts of the vector's payload chunks."""
        dec = self.decoded
        if dec is None or dec.payload_crypto is None:
            return []
        return [dec.payload_crypto.decrypt(decode(raw).get_bytes("payload")) for raw in dec.chunks_raw]


@cache
def case(stem: str) -> Case:
    return Case(stem)


def _can_protect(crypto: CryptoContext | None) -> bool:
    """True when ``crypto`` can encrypt and sign (a receiver holding symmetric keys)."""
    if crypto is None:
        return False
    try:
        crypto.verify(b"x", crypto.sign(b"x"))
        crypto.decrypt(crypto.encrypt(b"x"))
    except MslException:
        return False
    return True


def _server() -> Case:
    """A server holding every key: the receiver of the standalone token vectors."""
    return case(TOKEN_STEMS[0])


def _select(cases: list[Case], data: bytes) -> tuple[Case, bytes] | None:
    if not data or not cases:
        return None
    return cases[data[0] % len(cases)], data[1:]


def _with_selector(index: int, payload: bytes) -> bytes:
    return bytes([index]) + payload


# -- case groups ------------------------------------------------------------------------


@cache
def message_cases() -> list[Case]:
    return [case(s) for s in MESSAGE_STEMS]


@cache
def headerdata_cases() -> list[Case]:
    """Message vectors whose receiver can itself protect the header (symmetric keys)."""
    out = []
    for c in message_cases():
        dec = c.decoded
        if dec is not None and dec.header is not None and _can_protect(dec.header_crypto):
            out.append(c)
    return out


@cache
def payload_cases() -> list[Case]:
    out = []
    for c in message_cases():
        dec = c.decoded
        if dec is not None and dec.chunks_raw and _can_protect(dec.payload_crypto):
            out.append(c)
    return out


@cache
def error_cases() -> list[Case]:
    return [case(s) for s in ERROR_STEMS]


@cache
def errordata_cases() -> list[Case]:
    out = []
    for c in error_cases():
        dec = c.decoded
        if dec is None or dec.error_header is None:
            continue
        crypto = select_header_crypto_context(c.ctx, None, dec.error_header.entity_auth_data)
        if _can_protect(crypto):
            out.append(c)
    return out


@cache
def keyx_request_cases(scheme: str) -> list[Case]:
    """Server-side vectors whose header carries key request data of ``scheme``."""
    out = []
    for c in message_cases():
        dec = c.decoded
        if dec is not None and dec.header is not None and c.ctx.token_factory is not None:
            if any(r.scheme == scheme for r in dec.header.data.key_request_data):
                out.append(c)
    return out


@cache
def keyx_response_cases(scheme: str) -> list[Case]:
    """Client-side vectors whose header carries key response data of ``scheme``."""
    out = []
    for c in message_cases():
        dec = c.decoded
        if dec is not None and dec.header is not None:
            krd = dec.header.data.key_response_data
            if krd is not None and krd.scheme == scheme and c.ctx.token_factory is None:
                out.append(c)
    return out


@cache
def auth_cases() -> list[Case]:
    """A server and a client context (entity auth data is received by both)."""
    return [case(MESSAGE_STEMS[0]), case(ERROR_STEMS[0])]


@cache
def user_auth_cases() -> list[Case]:
    """Server-side vectors carrying user auth data (by entity auth data and by master token)."""
    out = []
    for c in message_cases():
        dec = c.decoded
        if dec is not None and dec.header is not None and dec.header.data.user_auth_data is not None:
            if c.ctx.token_factory is not None:
                out.append(c)
    return out


@cache
def master_tokens() -> list[MasterToken]:
    """Every distinct master token of the vectors, parsed (and opened) by the server."""
    server = _server()
    assert server.msl_keys is not None
    raws: list[bytes] = []
    for c in message_cases():
        dec = c.decoded
        if dec is not None and "mastertoken" in dec.header_obj:
            raws.append(encode(dec.header_obj.get_object("mastertoken")))
        if dec is not None and dec.header is not None and dec.header.data.key_response_data is not None:
            raws.append(_token_bytes(dec.header.data.key_response_data.master_token))
        raws.extend(h.mastertoken for h in c.keys.master_tokens)
    for s in TOKEN_STEMS:
        t = case(s)
        if t.keys.bound_master_token:
            raws.append(t.keys.bound_master_token)
    if server.token is not None:
        raws.append(server.token)
    out: dict[bytes, MasterToken] = {}
    for raw in raws:
        token = MasterToken.parse(decode(raw), server.msl_keys, clock=server.ctx.clock)
        out.setdefault(token.tokendata, token)
    return list(out.values())


@cache
def user_id_tokens() -> list[tuple[MasterToken, UserIdToken]]:
    """(bound master token, user ID token) pairs of the vectors, parsed by the server."""
    server = _server()
    assert server.msl_keys is not None
    out: list[tuple[MasterToken, UserIdToken]] = []
    for mt in master_tokens():
        for raw in _uit_raws():
            try:
                uit = UserIdToken.parse(decode(raw), server.msl_keys, mt, clock=server.ctx.clock)
            except MslException:
                continue
            if all(u.tokendata != uit.tokendata for _, u in out):
                out.append((mt, uit))
    return out


def _uit_raws() -> list[bytes]:
    raws: list[bytes] = []
    for c in message_cases():
        dec = c.decoded
        if dec is not None and dec.header is not None and dec.header.data.user_id_token is not None:
            raws.append(_token_bytes(dec.header.data.user_id_token))
    for s in TOKEN_STEMS:
        t = case(s)
        if t.keys.bound_user_id_token:
            raws.append(t.keys.bound_user_id_token)
        if s.startswith("58_") and t.token is not None:
            raws.append(t.token)
    return raws


def _token_bytes(token: MasterToken | UserIdToken | ServiceToken) -> bytes:
    """The wire object of a token."""
    return encode({"tokendata": token.tokendata, "signature": token.signature})


def _service_token_raws() -> list[bytes]:
    raws: list[bytes] = []
    for s in TOKEN_STEMS:
        t = case(s)
        if t.token is not None and int(s[:2]) >= 59:
            raws.append(t.token)
    for c in message_cases():
        dec = c.decoded
        if dec is not None and dec.header is not None:
            raws.extend(_token_bytes(st) for st in dec.header.data.service_tokens)
    return raws


# -- message targets ----------------------------------------------------------------------

_SPLITS = (0, 1, 7, 64)


@_contract
def message(data: bytes) -> None:
    """sel + mode + an MSL message: MessageReader over the whole message (receivers of
    01-56); mode bits 0-1 choose whole or 1/7/64-byte feeding, bit 2 peer-to-peer."""
    picked = _select(message_cases(), data)
    if picked is not None and picked[1]:
        c, body = picked
        c.read(body[1:], _SPLITS[body[0] & 3], peer_to_peer=bool(body[0] & 4))


def _seed_message() -> Iterator[bytes]:
    for i, c in enumerate(message_cases()):
        assert c.message is not None
        yield _with_selector(i, b"\0" + c.message)
        yield _with_selector(i, b"\4" + c.message)


def _protected_header(c: Case, plaintext: bytes) -> bytes:
    dec = c.decoded
    assert dec is not None and dec.header_crypto is not None
    crypto = dec.header_crypto
    headerdata = crypto.encrypt(plaintext)
    outer = dec.header_obj.to_dict()
    outer["headerdata"] = headerdata
    outer["signature"] = crypto.sign(headerdata)
    return encode(outer)


@_contract
def message_headerdata(data: bytes) -> None:
    """sel + mode + header data plaintext: encrypted and signed with the vector's header
    keys, then read with the vector's payload chunks (mode bit 0: peer-to-peer)."""
    picked = _select(headerdata_cases(), data)
    if picked is None or not picked[1]:
        return
    c, body = picked
    dec = c.decoded
    assert dec is not None
    c.read(_protected_header(c, body[1:]) + b"".join(dec.chunks_raw), peer_to_peer=bool(body[0] & 1))


def _seed_message_headerdata() -> Iterator[bytes]:
    for i, c in enumerate(headerdata_cases()):
        dec = c.decoded
        assert dec is not None and dec.header_crypto is not None
        plaintext = dec.header_crypto.decrypt(dec.header_obj.get_bytes("headerdata"))
        yield _with_selector(i, b"\0" + plaintext)
        # Peer-to-peer: the same header with the tokens repeated as the peer's.
        fields = decode(plaintext).to_dict()
        if "mastertoken" in dec.header_obj:
            fields["peermastertoken"] = dec.header_obj.get_object("mastertoken").to_dict()
        for own, peer in (("useridtoken", "peeruseridtoken"), ("servicetokens", "peerservicetokens")):
            if own in fields:
                fields[peer] = fields[own]
        yield _with_selector(i, b"\1" + plaintext)
        yield _with_selector(i, b"\1" + encode(fields))


@_contract
def payload_chunk_plaintext(data: bytes) -> None:
    """sel + payload chunk plaintext: encrypted and signed with the vector's payload keys,
    then parsed as a chunk (sequence number, message ID, decompression)."""
    picked = _select(payload_cases(), data)
    if picked is None:
        return
    c, plaintext = picked
    dec = c.decoded
    assert dec is not None and dec.payload_crypto is not None
    crypto = dec.payload_crypto
    payload = crypto.encrypt(plaintext)
    obj = decode(encode({"payload": payload, "signature": crypto.sign(payload)}))
    PayloadChunk.parse(obj, crypto, max_deflate_ratio=c.ctx.max_deflate_ratio, max_data_size=1 << 20)


def _seed_payload_chunk_plaintext() -> Iterator[bytes]:
    for i, c in enumerate(payload_cases()):
        for plain in c.payload_chunks():
            yield _with_selector(i, plain)


@_contract
def error_header(data: bytes) -> None:
    """sel + an error header object (vectors 36-47): ErrorHeader.parse."""
    picked = _select(error_cases(), data)
    if picked is not None:
        c, body = picked
        c.reset()
        ErrorHeader.parse(c.ctx, decode(body))


def _seed_error_header() -> Iterator[bytes]:
    for i, c in enumerate(error_cases()):
        assert c.message is not None
        yield _with_selector(i, c.message)


@_contract
def error_header_errordata(data: bytes) -> None:
    """sel + error data plaintext: encrypted and signed with the sender's entity keys."""
    picked = _select(errordata_cases(), data)
    if picked is None:
        return
    c, plaintext = picked
    c.reset()
    dec = c.decoded
    assert dec is not None and dec.error_header is not None
    crypto = select_header_crypto_context(c.ctx, None, dec.error_header.entity_auth_data)
    outer = dec.header_obj.to_dict()
    errordata = crypto.encrypt(plaintext)
    outer["errordata"] = errordata
    outer["signature"] = crypto.sign(errordata)
    ErrorHeader.parse(c.ctx, decode(encode(outer)))


def _seed_error_header_errordata() -> Iterator[bytes]:
    for i, c in enumerate(errordata_cases()):
        dec = c.decoded
        assert dec is not None and dec.error_header is not None
        crypto = select_header_crypto_context(c.ctx, None, dec.error_header.entity_auth_data)
        yield _with_selector(i, crypto.decrypt(dec.error_header.errordata))


# -- token targets ------------------------------------------------------------------------


def _parse_master_token(obj: MslObject) -> MasterToken:
    server = _server()
    assert server.msl_keys is not None
    token = MasterToken.parse(obj, server.msl_keys, clock=server.ctx.clock)
    token.is_expired()
    token.is_renewable()
    if token.decrypted:
        server.ctx.session_crypto_context(token)
    return token


@_contract
def master_token(data: bytes) -> None:
    """A master token object, parsed (verified, decrypted) with the server's MSL keys."""
    _parse_master_token(decode(data))


def _seed_master_token() -> Iterator[bytes]:
    for token in master_tokens():
        yield _token_bytes(token)


def _signed(tokendata: bytes, crypto: CryptoContext) -> MslObject:
    return decode(encode({"tokendata": tokendata, "signature": crypto.sign(tokendata)}))


@_contract
def master_token_tokendata(data: bytes) -> None:
    """Master token data, signed with the server's MSL keys, then parsed."""
    server = _server()
    assert server.msl_keys is not None
    _parse_master_token(_signed(data, server.msl_keys))


def _seed_master_token_tokendata() -> Iterator[bytes]:
    for token in master_tokens():
        yield token.tokendata


def _with_encrypted(tokendata: bytes, key: str, plaintext: bytes, crypto: CryptoContext) -> bytes:
    fields = decode(tokendata).to_dict()
    fields[key] = crypto.encrypt(plaintext)
    return encode(fields)


@_contract
def master_token_sessiondata(data: bytes) -> None:
    """Master token session data plaintext, encrypted and signed with the MSL keys."""
    server = _server()
    assert server.msl_keys is not None
    tokendata = _with_encrypted(master_tokens()[0].tokendata, "sessiondata", data, server.msl_keys)
    _parse_master_token(_signed(tokendata, server.msl_keys))


def _seed_master_token_sessiondata() -> Iterator[bytes]:
    server = _server()
    assert server.msl_keys is not None
    for token in master_tokens():
        yield server.msl_keys.decrypt(decode(token.tokendata).get_bytes("sessiondata"))


def _parse_uit(obj: MslObject, selector: int) -> None:
    server = _server()
    assert server.msl_keys is not None
    pairs = user_id_tokens()
    bound = pairs[selector % len(pairs)][0]
    token = UserIdToken.parse(obj, server.msl_keys, bound, clock=server.ctx.clock)
    token.is_expired()
    token.is_renewable()
    token.is_bound_to(bound)


@_contract
def user_id_token(data: bytes) -> None:
    """sel + a user ID token object, parsed with the server's MSL keys and the selected
    vector master token to bind to."""
    if data:
        _parse_uit(decode(data[1:]), data[0])


def _seed_user_id_token() -> Iterator[bytes]:
    for i, (_, uit) in enumerate(user_id_tokens()):
        yield _with_selector(i, _token_bytes(uit))


@_contract
def user_id_token_tokendata(data: bytes) -> None:
    """sel + user ID token data, signed with the MSL keys, then parsed."""
    server = _server()
    assert server.msl_keys is not None
    if data:
        _parse_uit(_signed(data[1:], server.msl_keys), data[0])


def _seed_user_id_token_tokendata() -> Iterator[bytes]:
    for i, (_, uit) in enumerate(user_id_tokens()):
        yield _with_selector(i, uit.tokendata)


@_contract
def user_id_token_userdata(data: bytes) -> None:
    """sel + user data plaintext, encrypted and signed with the MSL keys, then parsed."""
    server = _server()
    assert server.msl_keys is not None
    if not data:
        return
    pairs = user_id_tokens()
    uit = pairs[data[0] % len(pairs)][1]
    tokendata = _with_encrypted(uit.tokendata, "userdata", data[1:], server.msl_keys)
    _parse_uit(_signed(tokendata, server.msl_keys), data[0])


def _seed_user_id_token_userdata() -> Iterator[bytes]:
    server = _server()
    assert server.msl_keys is not None
    for i, (_, uit) in enumerate(user_id_tokens()):
        yield _with_selector(i, server.msl_keys.decrypt(decode(uit.tokendata).get_bytes("userdata")))


def _bindings() -> list[tuple[MasterToken | None, UserIdToken | None]]:
    out: list[tuple[MasterToken | None, UserIdToken | None]] = [(None, None)]
    out.extend(user_id_tokens())
    out.extend((mt, None) for mt in master_tokens())
    return out


def _parse_service_token(obj: MslObject, selector: int) -> None:
    server = _server()
    bindings = _bindings()
    mt, uit = bindings[selector % len(bindings)]
    token = ServiceToken.parse(obj, server.st_contexts, mt, uit, max_deflate_ratio=server.ctx.max_deflate_ratio)
    token.is_bound_to_master_token(mt)
    token.is_bound_to_user_id_token(uit)


@_contract
def service_token(data: bytes) -> None:
    """sel + a service token object, parsed with the service token keys and the selected
    (master token, user ID token) binding."""
    if data:
        _parse_service_token(decode(data[1:]), data[0])


def _binding_index(raw_tokendata: bytes) -> int:
    """The binding selector matching a token's serial numbers (unbound: 0)."""
    fields = decode(raw_tokendata).to_dict()
    for i, (mt, uit) in enumerate(_bindings()):
        mt_ok = fields.get("mtserialnumber") == (mt.serial_number if mt else None)
        uit_ok = fields.get("uitserialnumber") == (uit.serial_number if uit else None)
        if mt_ok and uit_ok:
            return i
    return 0


def _seed_service_token() -> Iterator[bytes]:
    for raw in _service_token_raws():
        yield _with_selector(_binding_index(decode(raw).get_bytes("tokendata")), raw)


@_contract
def service_token_tokendata(data: bytes) -> None:
    """sel + service token data, signed with the service token key its name selects."""
    if not data:
        return
    server = _server()
    tokendata = data[1:]
    try:
        name = decode(tokendata).to_dict().get("name")
    except MslException:
        name = None
    crypto = select_crypto_context(name if isinstance(name, str) else "", server.st_contexts)
    assert crypto is not None
    _parse_service_token(_signed(tokendata, crypto), data[0])


def _seed_service_token_tokendata() -> Iterator[bytes]:
    for raw in _service_token_raws():
        tokendata = decode(raw).get_bytes("tokendata")
        yield _with_selector(_binding_index(tokendata), tokendata)


# -- key exchange targets -----------------------------------------------------------------


def _keyx_request(scheme: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        picked = _select(keyx_request_cases(scheme), data)
        if picked is None:
            return
        c, body = picked
        c.reset()
        ctx = c.ctx
        obj = decode(body)
        wire_scheme = obj.get_string("scheme")
        request = KEY_REQUEST_SCHEMES.get(wire_scheme).parse(obj.get_object("keydata"), ctx)
        request.to_msl()
        factory = ctx.key_exchange_factory(request.scheme)
        dec = c.decoded
        if factory is None or dec is None or dec.header is None:
            return
        header = dec.header
        if header.master_token is not None:
            factory.generate_response(ctx, request, master_token=header.master_token)
        else:
            factory.generate_response(ctx, request, entity_auth_data=header.entity_auth_data)

    run.__name__ = f"keyx_request_{scheme.lower()}"
    run.__doc__ = (
        f"sel + {scheme} key request data: parsed by the server of a vector that sent one, "
        "then answered (generate_response) for that vector's entity or master token."
    )
    return _contract(run)


def _keyx_request_seeds(scheme: str) -> Callable[[], Iterator[bytes]]:
    def gen() -> Iterator[bytes]:
        for i, c in enumerate(keyx_request_cases(scheme)):
            dec = c.decoded
            assert dec is not None and dec.header is not None
            for request in dec.header.data.key_request_data:
                if request.scheme == scheme:
                    wire = request.to_msl()
                    yield _with_selector(i, encode(wire))
                    if scheme == "ASYMMETRIC_WRAPPED":
                        # Keys a mutator will not build: too small to wrap, odd exponents, EC.
                        for der in _odd_public_keys():
                            yield _with_selector(i, encode({**wire, "keydata": {**wire["keydata"], "publickey": der}}))

    return gen


@cache
def _odd_public_keys() -> list[bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    out = []
    for bits, e in ((384, 65537), (512, 3), (1024, 65537), (1536, 2**61 - 1)):
        n = int.from_bytes(_stream(f"rsa{bits}", bits // 8), "big") | (1 << (bits - 1)) | 1
        key = rsa.RSAPublicNumbers(e, n).public_key()
        out.append(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    ec_key = ec.derive_private_key(0x5EED, ec.SECP256R1()).public_key()
    out.append(ec_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    return out


def _stream(label: str, size: int) -> bytes:
    """Deterministic pseudo-random bytes."""
    import hashlib

    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


def _keyx_response(scheme: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        picked = _select(keyx_response_cases(scheme), data)
        if picked is None:
            return
        c, body = picked
        c.reset()
        ctx = c.ctx
        response = parse_key_response_data(decode(body), ctx)
        response.to_msl()
        factory = ctx.key_exchange_factory(response.scheme)
        dec = c.decoded
        if factory is None or dec is None or dec.header is None:
            return
        # As the reader does: try each request of the scheme this client sent.
        for request in c.key_request_data:
            if request.scheme == response.scheme:
                try:
                    factory.crypto_context(ctx, request, response, dec.header.master_token)
                except MslInternalException:
                    raise
                except MslException:
                    continue

    run.__name__ = f"keyx_response_{scheme.lower()}"
    run.__doc__ = (
        f"sel + {scheme} key response data (with its master token): parsed by the client of a "
        "vector that received one, then opened with that client's key requests (crypto_context)."
    )
    return _contract(run)


def _keyx_response_seeds(scheme: str) -> Callable[[], Iterator[bytes]]:
    def gen() -> Iterator[bytes]:
        for i, c in enumerate(keyx_response_cases(scheme)):
            dec = c.decoded
            assert dec is not None and dec.header is not None
            krd = dec.header.data.key_response_data
            assert krd is not None
            yield _with_selector(i, encode(krd.to_msl()))

    return gen


# -- authentication data targets ----------------------------------------------------------


@_contract
def entity_auth_data(data: bytes) -> None:
    """sel + entity auth data of any scheme: parsed by a server (sel even) or a client
    (sel odd), then authenticated by the receiver's factory for the scheme, if any."""
    picked = _select(auth_cases(), data)
    if picked is None:
        return
    c, body = picked
    c.reset()
    ctx = c.ctx
    obj = decode(body)
    scheme = obj.get_string("scheme")
    parsed = ENTITY_AUTH_SCHEMES.get(scheme).parse(obj.get_object(KEY_AUTHDATA), ctx)
    parsed.to_msl()
    parsed.identity  # noqa: B018 - computing it is part of the parse
    factory = ctx.entity_auth_factory(parsed.scheme)
    if factory is not None:
        factory.crypto_context(ctx, parsed)


def _seed_entity_auth_data() -> Iterator[bytes]:
    for c in message_cases():
        dec = c.decoded
        if dec is not None and "entityauthdata" in dec.header_obj:
            receiver = 0 if c.ctx.token_factory is not None else 1
            yield _with_selector(receiver, encode(dec.header_obj.get_object("entityauthdata")))
    server = case(MESSAGE_STEMS[0])
    extra: list[EntityAuthData] = []
    mt = next((t for t in master_tokens() if t.decrypted), None)
    inner = next((ead for c in message_cases() if (ead := _psk_entity_auth_data(c)) is not None), None)
    if mt is not None and inner is not None:
        extra.append(MtProtectedEntityAuthData.create(server.ctx, mt, inner))
    extra.append(X509EntityAuthData(_self_signed_certificate()))
    for item in extra:
        yield _with_selector(0, encode(item.to_msl()))
    yield _with_selector(0, b'{"scheme":"PSK_PROFILE","authdata":{"pskid":"client1","profile":"p1"}}')
    yield _with_selector(0, b'{"scheme":"PROVISIONED","authdata":{}}')
    yield _with_selector(0, b'{"scheme":"ECC","authdata":{"identity":"client1","pubkeyid":"ecckey1"}}')


def _psk_entity_auth_data(c: Case) -> EntityAuthData | None:
    dec = c.decoded
    if dec is None or dec.header is None or dec.header.entity_auth_data is None:
        return None
    return dec.header.entity_auth_data if dec.header.entity_auth_data.scheme == "PSK" else None


def _self_signed_certificate() -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.derive_private_key(0x5EED, ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, 'client1, "fuzz"+seed'),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "missile"),
        ]
    )
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


# JOSE: what the key exchanges unwrap from peers ----------------------------------------


@_contract
def jwk(data: bytes) -> None:
    """A JSON Web Key (as unwrapped in JWE_LADDER, JWK_LADDER and the JWK mechanisms):
    JsonWebKey.parse, the symmetric key, and an encode/parse round trip."""
    from missile.crypto.jwk import JsonWebKey

    key = JsonWebKey.parse(data)
    if key.kty.value == "oct":
        key.secret_key()
    if JsonWebKey.parse(key.encode()) != key:
        raise AssertionError("JWK encode/parse round trip changed the key")


def _seed_jwk() -> Iterator[bytes]:
    from missile.crypto.jwk import jwe_ladder_wrapping_jwk, jwk_ladder_wrapping_jwk, session_encryption_jwk

    key = _stream("jwk", 16)
    yield session_encryption_jwk(key, with_key_ops=True).encode()
    yield jwe_ladder_wrapping_jwk(key, "kid-1").encode()
    yield jwk_ladder_wrapping_jwk(key).encode()
    yield b'{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQ","use":"enc","alg":"RSA-OAEP","key_ops":["wrapKey"]}'


_KW_KEY = bytes(range(16))


@_contract
def aes_kw_jwk(data: bytes) -> None:
    """JWK_LADDER's AES key wrap: unwrap of arbitrary bytes, and unwrap(wrap(x)) == the
    space-padded x."""
    from missile.crypto.aeskw_jwk import AesKwJwkCryptoContext, pad_jwk

    context = AesKwJwkCryptoContext(_KW_KEY)
    with contextlib.suppress(MslException):
        context.unwrap(data)
    if context.unwrap(context.wrap(data)) != pad_jwk(data):
        raise AssertionError("AES-KW round trip changed the data")


def _seed_aes_kw_jwk() -> Iterator[bytes]:
    from missile.crypto.aeskw_jwk import AesKwJwkCryptoContext

    yield from _seed_jwk()
    for seed in list(_seed_jwk()):
        yield AesKwJwkCryptoContext(_KW_KEY).wrap(seed)


@cache
def _jwe_contexts() -> list[CryptoContext]:
    """JWE contexts of the vectors' requesters: RSA-OAEP compact (05), RSA-OAEP JSON (07),
    A128KW JSON with a ladder wrapping key (21)."""
    from missile.crypto.algorithms import JweEncryption, JweFormat
    from missile.crypto.jwe import JweCryptoContext, RsaOaepCekContext
    from missile.keyx.asymmetric_wrapped import AsymmetricWrappedRequest
    from missile.keyx.jwe_ladder import jwe_ladder_key_context

    out: list[CryptoContext] = []
    for stem, fmt in (("05_", JweFormat.JWE_CS), ("07_", JweFormat.JWE_JS)):
        request = case(stems_with(stem)).key_request_data[0]
        assert isinstance(request, AsymmetricWrappedRequest)
        out.append(
            JweCryptoContext(
                RsaOaepCekContext(request.private_key, request.public_key),  # type: ignore[arg-type]
                JweEncryption.A128GCM,
                fmt,
            )
        )
    wrap_key = base64.b64decode(case(stems_with("21_")).keys.wrap_keys[0]["wrapkey_b64"])
    out.append(jwe_ladder_key_context(wrap_key))
    return out


def stems_with(prefix: str) -> str:
    """The vector stem starting with ``prefix``."""
    return next(s for s in stems() if s.startswith(prefix))


@_contract
def jwe_unwrap(data: bytes) -> None:
    """sel + a JWE (compact or JSON serialization): unwrapped by a requester's JWE context
    (RSA-OAEP as in ASYMMETRIC_WRAPPED JWE_RSA / JWEJS_RSA, A128KW as in JWE_LADDER)."""
    if not data:
        return
    contexts = _jwe_contexts()
    contexts[data[0] % len(contexts)].unwrap(data[1:])


def _seed_jwe_unwrap() -> Iterator[bytes]:
    for i, stem in enumerate(("05_", "07_", "21_")):
        keydata = case(stems_with(stem)).vector["expected"]["header"]["keyresponsedata"]["keydata"]
        for field in ("encryptionkey", "hmackey", "wrapkey"):
            if field in keydata:
                yield _with_selector(i, base64.b64decode(keydata[field]))
    for i, context in enumerate(_jwe_contexts()):
        yield _with_selector(i, context.wrap(b'{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAA"}'))


# X.509: a trust store holding one CA (the vectors' server RSA key), and certificates.

_X509_START = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")


@cache
def x509_test_ca() -> tuple[Any, Any, Any]:
    """(CA private key, CA certificate, X509EntityAuthFactory trusting it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    from missile.entityauth.stores import InMemoryX509Store
    from missile.entityauth.x509 import X509EntityAuthFactory

    server = case(MESSAGE_STEMS[0])
    private_der = next(p.private_der for p in server.keys.rsa if p.private_der)
    key = serialization.load_der_private_key(private_der, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "missile fuzz CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(_X509_START)
        .not_valid_after(_X509_START + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .sign(key, hashes.SHA256())
    )
    store = InMemoryX509Store()
    store.add_trusted(ca, server.ctx.clock())
    return key, ca, X509EntityAuthFactory(store)


def _x509_authenticate(der: bytes) -> None:
    from missile.entityauth.x509 import X509EntityAuthData

    c = case(MESSAGE_STEMS[0])
    data = X509EntityAuthData.parse(decode(encode({"x509certificate": der})), c.ctx)
    data.to_msl()
    x509_test_ca()[2].crypto_context(c.ctx, data)


@_contract
def x509_certificate(data: bytes) -> None:
    """An X.509 certificate (DER): X509 entity auth data, authenticated against a trust
    store holding one CA."""
    _x509_authenticate(data)


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    size = n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")
    return bytes([tag]) + (bytes([n]) if n < 0x80 else bytes([0x80 | len(size)]) + size) + body


@_contract
def x509_tbs(data: bytes) -> None:
    """A TBSCertificate (DER) that the harness signs with the trusted CA's key: X509
    entity auth data whose signature verifies, authenticated against the trust store."""
    _x509_authenticate(signed_by_test_ca(data))


def signed_by_test_ca(tbs: bytes) -> bytes:
    """The certificate (DER) of TBSCertificate bytes, signed by the harness CA."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signature = x509_test_ca()[0].sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    return _der(0x30, tbs + _SHA256_WITH_RSA + _der(0x03, b"\0" + signature))


@cache
def x509_leaves() -> list[Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.name import _ASN1Type
    from cryptography.x509.oid import NameOID

    ca_key, ca, _ = x509_test_ca()
    subjects = [
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client1"), x509.NameAttribute(NameOID.COUNTRY_NAME, "US")]),
        x509.Name(
            [
                x509.RelativeDistinguishedName(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, "#+ a, b;<c> "),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "missile"),
                    ]
                ),
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.USER_ID, "uid1")]),
                x509.RelativeDistinguishedName(
                    [x509.NameAttribute(NameOID.PSEUDONYM, "bmp", _type=_ASN1Type.BMPString)]
                ),
                x509.RelativeDistinguishedName(
                    [x509.NameAttribute(NameOID.SERIAL_NUMBER, "univ", _type=_ASN1Type.UniversalString)]
                ),
                x509.RelativeDistinguishedName(
                    [x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, b"\x00\x01", _type=_ASN1Type.BitString)]
                ),
            ]
        ),
    ]
    public_keys: list[Any] = [
        ca_key.public_key(),
        rsa.RSAPublicNumbers(65537, int.from_bytes(_stream("x509rsa", 128), "big") | (1 << 1023) | 1).public_key(),
        ec.derive_private_key(0x5EED, ec.SECP256R1()).public_key(),
        ed25519.Ed25519PrivateKey.from_private_bytes(_stream("ed25519", 32)).public_key(),
    ]
    out = [ca]
    for i, public_key in enumerate(public_keys):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subjects[i % len(subjects)])
            .issuer_name(ca.subject)
            .public_key(public_key)
            .serial_number(100 + i)
            .not_valid_before(_X509_START)
            .not_valid_after(_X509_START + datetime.timedelta(days=365 * (1 + 3 * (i % 2))))
        )
        if i == 1:
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        out.append(builder.sign(ca_key, hashes.SHA256()))
    return out


def _seed_x509_certificate() -> Iterator[bytes]:
    from cryptography.hazmat.primitives import serialization

    for cert in [*x509_leaves(), _self_signed_certificate()]:
        yield cert.public_bytes(serialization.Encoding.DER)


def _seed_x509_tbs() -> Iterator[bytes]:
    for cert in x509_leaves():
        yield cert.tbs_certificate_bytes


@_contract
def user_auth_data(data: bytes) -> None:
    """sel + user auth data of any scheme: parsed by the server of a vector carrying one
    (with that header's master token), then authenticated by the scheme's factory."""
    picked = _select(user_auth_cases(), data)
    if picked is None:
        return
    c, body = picked
    c.reset()
    ctx = c.ctx
    dec = c.decoded
    assert dec is not None and dec.header is not None
    header = dec.header
    obj = decode(body)
    scheme = obj.get_string("scheme")
    parsed = USER_AUTH_SCHEMES.get(scheme).parse(obj.get_object(KEY_AUTHDATA), ctx, header.master_token)
    parsed.to_msl()
    factory = ctx.user_auth_factory(parsed.scheme)
    if factory is None:
        return
    identity = (
        header.master_token.identity
        if header.master_token is not None
        else (header.entity_auth_data.identity if header.entity_auth_data is not None else None)
    )
    if identity is not None:
        factory.authenticate(ctx, identity, parsed, None)


def _seed_user_auth_data() -> Iterator[bytes]:
    for i, c in enumerate(user_auth_cases()):
        dec = c.decoded
        assert dec is not None and dec.header is not None and dec.header.data.user_auth_data is not None
        yield _with_selector(i, encode(dec.header.data.user_auth_data.to_msl()))
        for mt, uit in user_id_tokens():
            yield _with_selector(
                i,
                encode(
                    {
                        "scheme": "USER_ID_TOKEN",
                        "authdata": {
                            "mastertoken": decode(_token_bytes(mt)),
                            "useridtoken": decode(_token_bytes(uit)),
                        },
                    }
                ),
            )


# -- encoding targets ---------------------------------------------------------------------


def _all_objects() -> Iterator[bytes]:
    """Every JSON object of the vectors' messages, decrypted plaintexts included."""
    for c in message_cases():
        assert c.message is not None
        dec = ObjectStreamDecoder()
        dec.feed(c.message)
        while (raw := dec.next_raw()) is not None:
            yield raw
        yield from c.payload_chunks()
    for s in TOKEN_STEMS:
        t = case(s)
        if t.token is not None:
            yield t.token
            yield decode(t.token).get_bytes("tokendata")


@_contract
def codec_decode(data: bytes) -> None:
    """missile.encoding.decode, then re-encoding what it decoded."""
    obj = decode(data)
    # Re-encoded in its own format (a binary-format object's bytes are not JSON values).
    again = decode(encode(obj, EncoderFormat.MISSILE_CBOR if obj.binary else EncoderFormat.JSON))
    if again != obj:
        raise AssertionError(f"decode(encode(x)) != x for {obj!r}")


def _seed_codec_decode() -> Iterator[bytes]:
    seen: set[bytes] = set()
    for raw in _all_objects():
        if raw not in seen and len(raw) < 16384:
            seen.add(raw)
            yield raw


@_contract
def stream_decoder(data: bytes) -> None:
    """sel + a byte stream: ObjectStreamDecoder fed whole and in sel-sized pieces (1-64)
    must hand out the same objects and fail the same way."""
    if not data:
        return
    split = (data[0] & 63) + 1
    stream = data[1:]

    def run(pieces: Iterable[bytes]) -> tuple[list[bytes], MslError | None, bytes]:
        decoder = ObjectStreamDecoder(max_object_size=4096)
        out: list[bytes] = []
        error: MslError | None = None
        try:
            for piece in pieces:
                decoder.feed(piece)
                while (raw := decoder.next_raw()) is not None:
                    if (raw[:1] != b"{" or raw[-1:] != b"}") and raw[:1] != _BINARY_ID:
                        raise AssertionError(f"not an object: {raw!r}")
                    out.append(raw)
        except MslEncodingException as exc:
            error = exc.error
        pending = decoder.has_pending_data()
        rest = decoder.take_remaining()
        if pending != bool(rest.strip(b" \t\r\n")):
            raise AssertionError("has_pending_data disagrees with take_remaining")
        return out, error, rest

    whole = run([stream])
    pieces = run(stream[i : i + split] for i in range(0, len(stream), split))
    if whole[:2] != pieces[:2]:
        raise AssertionError(f"split {split} changed the result: {whole[:2]!r} != {pieces[:2]!r}")
    if whole[1] is None and b"".join(whole[0]) + whole[2] != _without_leading_ws(stream, whole[0]):
        raise AssertionError("objects and remainder do not add up to the input")
    for raw in whole[0]:
        with contextlib.suppress(MslException):
            decode(raw)


def _without_leading_ws(stream: bytes, objects: list[bytes]) -> bytes:
    """``stream`` minus the whitespace before each returned object."""
    out = bytearray()
    pos = 0
    for raw in objects:
        start = stream.index(raw, pos)
        if stream[pos:start].strip(b" \t\r\n"):
            raise AssertionError("non-whitespace skipped between objects")
        out += raw
        pos = start + len(raw)
    rest = stream[pos:]
    return bytes(out) + (rest.lstrip(b" \t\r\n") if not rest.strip(b" \t\r\n") else rest)


def _seed_stream_decoder() -> Iterator[bytes]:
    for i, c in enumerate(message_cases()):
        assert c.message is not None
        if len(c.message) < 8192:
            yield _with_selector(i, c.message)
    yield _with_selector(0, b' {"a":"}\\"{"} \n{"b":{"c":{}}}{')


# -- the binary encoder format (docs/binary-format.md) -------------------------------------

_BINARY_ID = bytes((EncoderFormat.MISSILE_CBOR.identifier,))


def binary_stems() -> list[str]:
    """The binary-format message vectors, as ``binary/NN_name`` stems."""
    return [f"binary/{p.stem}" for p in sorted(BINARY_VECTOR_DIR.glob("[0-9][0-9]_*.json"))]


@cache
def binary_message_cases() -> list[Case]:
    return [case(s) for s in binary_stems()]


def _binary_objects() -> Iterator[bytes]:
    """Every top-level and nested binary-format object of the binary vectors."""
    for c in binary_message_cases():
        assert c.message is not None
        dec = ObjectStreamDecoder()
        dec.feed(c.message)
        while (raw := dec.next_raw()) is not None:
            yield raw
            with contextlib.suppress(MslException):
                obj = decode(raw)
                for key in ("headerdata", "errordata", "payload"):
                    if key in obj and obj.get_bytes(key)[:1] == _BINARY_ID:
                        yield obj.get_bytes(key)
    structures = json.loads((BINARY_VECTOR_DIR / "structures.json").read_text(encoding="utf-8"))["structures"]
    for item in structures.values():
        yield bytes.fromhex(item["hex"])


@_contract
def binary_decode(data: bytes) -> None:
    """The identifier byte + data: the binary-format decoder. Whatever it accepts must be
    the one deterministic encoding of what it decoded (re-encoding gives the input)."""
    raw = _BINARY_ID + data
    obj = decode(raw)
    if encode(obj, EncoderFormat.MISSILE_CBOR) != raw:
        raise AssertionError(f"accepted a non-deterministic encoding: {raw.hex()}")


def _seed_binary_decode() -> Iterator[bytes]:
    for raw in _binary_objects():
        if len(raw) < 16384:
            yield raw[1:]


@_contract
def binary_stream(data: bytes) -> None:
    """sel + a stream of binary-format objects: stream_decoder's checks (same objects
    whole and in pieces, nothing lost) on the binary framing."""
    stream_decoder(data)


def _seed_binary_stream() -> Iterator[bytes]:
    for i, c in enumerate(binary_message_cases()):
        assert c.message is not None
        if len(c.message) < 8192:
            yield _with_selector(i, c.message)
    yield _with_selector(3, _BINARY_ID + b"\xa1\x61a\x01" + _BINARY_ID + b"\xbf")


@_contract
def binary_message(data: bytes) -> None:
    """sel + mode + a binary-format MSL message: MessageReader by the receiver of a
    binary vector; mode bits 0-1 choose whole or 1/7/64-byte feeding."""
    picked = _select(binary_message_cases(), data)
    if picked is not None and picked[1]:
        c, body = picked
        c.read(body[1:], _SPLITS[body[0] & 3])


def _seed_binary_message() -> Iterator[bytes]:
    for i, c in enumerate(binary_message_cases()):
        assert c.message is not None
        yield _with_selector(i, b"\0" + c.message)
        yield _with_selector(i, b"\1" + c.message)


def _decompress_target(algo: CompressionAlgorithm) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        # Decompression of arbitrary input, bounded as the reader bounds it.
        try:
            decompress(algo, data, max_ratio=200, max_size=1 << 20)
        except MslEncodingException as exc:
            if exc.error not in (MslError.UNCOMPRESSION_ERROR,):
                raise AssertionError(f"unexpected error {exc.error}") from exc
        # Round trip: whatever compresses must decompress to itself.
        packed = lzw_compress(data) if algo is CompressionAlgorithm.LZW else compress(algo, data)
        if packed is not None and decompress(algo, packed, max_ratio=1 << 30, max_size=len(data)) != data:
            raise AssertionError(f"{algo.value} round trip changed the data")

    run.__name__ = algo.value.lower()
    run.__doc__ = f"{algo.value} decompression of arbitrary bytes, and a compress/decompress round trip."
    return _contract(run)


def _compression_seeds(algo: CompressionAlgorithm) -> Callable[[], Iterator[bytes]]:
    def gen() -> Iterator[bytes]:
        plain: list[bytes] = []
        for c in message_cases():
            for chunk in c.payload_chunks():
                fields = decode(chunk)
                raw = fields.get_bytes("data")
                if fields.opt_string("compressionalgo") == algo.value:
                    yield raw
                plain.append(raw)
        plain.append(b"TOBEORNOTTOBEORTOBEORNOT" * 20)
        plain.append(bytes(range(256)) * 4)
        for p in plain:
            packed = compress(algo, p)
            if packed is not None:
                yield packed

    return gen


def _check_streams(data: bytes) -> None:
    """The piecewise base64 codecs agree with the whole-text ones for any split."""
    step = 1 + (data[0] % 7 if data else 0)
    pieces = [data[i : i + step] for i in range(0, len(data), step)]
    try:
        whole: bytes | None = pybase64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        whole = None
    try:
        streamed: bytes | None = b"".join(b64decode_stream(pieces))
    except MslEncodingException:
        streamed = None
    if streamed != whole:
        raise AssertionError("b64decode_stream disagrees with strict whole decoding")
    if b"".join(b64encode_stream(pieces)) != pybase64.b64encode(data):
        raise AssertionError("b64encode_stream disagrees with whole encoding")


@_contract
def base64_decode(data: bytes) -> None:
    """Strict base64 (bytes and str input) and base64url decoding; the piecewise codecs
    agree with the whole-text ones."""
    _check_streams(data)
    decoded = b64decode(data)
    if b64decode(b64encode(decoded)) != decoded:
        raise AssertionError("base64 round trip changed the data")
    text = data.decode("latin-1")
    if b64decode(text) != decoded:
        raise AssertionError("str and bytes input decode differently")
    b64url_decode(text)


@_contract
def base64url_decode(data: bytes) -> None:
    """base64url decoding of arbitrary text."""
    b64url_decode(data.decode("utf-8", "replace"))


def _seed_base64() -> Iterator[bytes]:
    seen: set[str] = set()
    for raw in _all_objects():
        try:
            fields = decode(raw).to_dict()
        except MslException:
            continue
        for value in fields.values():
            if isinstance(value, str) and value not in seen and len(value) < 4096:
                seen.add(value)
                yield value.encode()
    yield b"QUJD\r\nREVG"
    yield b"QQ=="


# -- registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A fuzz target: ``run(data)`` and the seed inputs built from the vectors."""

    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], Iterable[bytes]]

    @property
    def description(self) -> str:
        """The first paragraph of the target's docstring, on one line."""
        first = (self.run.__doc__ or "").strip().split("\n\n")[0]
        return " ".join(first.split())


def _registry() -> dict[str, Target]:
    entries: list[Target] = [
        Target("message", message, _seed_message),
        Target("message_headerdata", message_headerdata, _seed_message_headerdata),
        Target("payload_chunk_plaintext", payload_chunk_plaintext, _seed_payload_chunk_plaintext),
        Target("error_header", error_header, _seed_error_header),
        Target("error_header_errordata", error_header_errordata, _seed_error_header_errordata),
        Target("master_token", master_token, _seed_master_token),
        Target("master_token_tokendata", master_token_tokendata, _seed_master_token_tokendata),
        Target("master_token_sessiondata", master_token_sessiondata, _seed_master_token_sessiondata),
        Target("user_id_token", user_id_token, _seed_user_id_token),
        Target("user_id_token_tokendata", user_id_token_tokendata, _seed_user_id_token_tokendata),
        Target("user_id_token_userdata", user_id_token_userdata, _seed_user_id_token_userdata),
        Target("service_token", service_token, _seed_service_token),
        Target("service_token_tokendata", service_token_tokendata, _seed_service_token_tokendata),
    ]
    for scheme in KEYX_SCHEMES:
        entries.append(Target(f"keyx_request_{scheme.lower()}", _keyx_request(scheme), _keyx_request_seeds(scheme)))
        entries.append(Target(f"keyx_response_{scheme.lower()}", _keyx_response(scheme), _keyx_response_seeds(scheme)))
    entries += [
        Target("entity_auth_data", entity_auth_data, _seed_entity_auth_data),
        Target("user_auth_data", user_auth_data, _seed_user_auth_data),
        Target("codec_decode", codec_decode, _seed_codec_decode),
        Target("stream_decoder", stream_decoder, _seed_stream_decoder),
        Target("binary_decode", binary_decode, _seed_binary_decode),
        Target("binary_stream", binary_stream, _seed_binary_stream),
        Target("binary_message", binary_message, _seed_binary_message),
        Target("gzip", _decompress_target(CompressionAlgorithm.GZIP), _compression_seeds(CompressionAlgorithm.GZIP)),
        Target("lzw", _decompress_target(CompressionAlgorithm.LZW), _compression_seeds(CompressionAlgorithm.LZW)),
        Target("base64", base64_decode, _seed_base64),
        Target("base64url", base64url_decode, _seed_base64),
        Target("jwk", jwk, _seed_jwk),
        Target("aes_kw_jwk", aes_kw_jwk, _seed_aes_kw_jwk),
        Target("jwe_unwrap", jwe_unwrap, _seed_jwe_unwrap),
        Target("x509_certificate", x509_certificate, _seed_x509_certificate),
        Target("x509_tbs", x509_tbs, _seed_x509_tbs),
    ]
    return {t.name: t for t in entries}


TARGETS: dict[str, Target] = _registry()
"""Every fuzz target by name, in a stable order."""


@cache
def _seeds(name: str) -> tuple[bytes, ...]:
    out: dict[bytes, None] = {}
    for seed in TARGETS[name].seeds():
        out.setdefault(seed, None)
    return tuple(out)


def seeds(name: str) -> list[bytes]:
    """The distinct seed inputs of target ``name``."""
    return list(_seeds(name))


MAX_LEN_FLOOR = 4096
MAX_LEN_CEILING = 65536


def max_len(name: str) -> int:
    """The input size target ``name`` is fuzzed up to: twice its largest seed, within bounds."""
    largest = max((len(s) for s in _seeds(name)), default=0)
    return min(max(MAX_LEN_FLOOR, 2 * largest), MAX_LEN_CEILING)

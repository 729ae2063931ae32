"""The ``peers`` section of benchmarks/run.py: missile next to other message-security layers.

A ratio to raw AES+HMAC says how much of missile's cost is not crypto; it does not say
whether that cost is reasonable for a message-security protocol. This section answers
that by measuring, in the same process and in alternating rounds, the same small round
trip done by established peers:

- ``oscore``: OSCORE (RFC 8613) with ``aiocoap``'s security-context classes, pairwise,
  AES-CCM-16-64-128, with its replay window, protecting real CoAP messages (a POST with
  the payload, a 2.04 response bound to it) that are encoded to and decoded from CoAP
  wire bytes (RFC 7252 framing, no UDP): the IETF's message-level security, the target;
- ``jwe``: JWE compact serialisation with ``jwcrypto`` (``dir``, ``A128CBC-HS256``: the
  same AES-CBC+HMAC-SHA256 family MSL uses), no replay protection or message binding;
- ``secretbox``: a bare PyNaCl ``SecretBox`` (XSalsa20-Poly1305), nothing else: the floor;
- ``missile_json``/``missile_binary``: missile's writer and reader under a master token
  (``session_pair`` of run.py), the request and the response in one encoder format.
  ``missile_binary`` is measured when this build has the negotiated binary format
  (:func:`binary_format`), else reported as pending.

A round trip is: the client protects a 100-byte request, the server unprotects it and
protects a response carrying the same 100 bytes, the client unprotects that; every step
verifies (the smoke test tests/test_bench_peers.py tampers with each wire and sees it
refused). The figure is round trips per second of CPU time of this process
(``time.process_time``, as the other single-process sections), the best of ``repeats``
rounds, each round running every peer in turn so that a slow moment of the shared
machine does not fall on one peer only. Wire bytes are those of one request (and one
response): for OSCORE the CoAP message, for missile the whole MSL message.

Over HTTP the section compares missile at 8 concurrent clients (``missile serve
--workers 2`` on loopback, plain HTTP, the client stack of the ``http`` section; each
client format its own PSK entity, as one session per entity is what a server keeps) with a
trivial echo under uvicorn with TLS (a throwaway ``trustme`` CA, 2 workers) reached
through the same :class:`PooledHttpTransport`, and with the same echo without TLS (what
TLS itself costs on this machine), all in alternation. HTTP figures are wall time.

Where missile misses a target, the section measures what bounds it, in the same run:

- against OSCORE, each protocol's cryptography alone (missile's: per message the header
  data and the payload chunk each an AES-CBC envelope with an HMAC-SHA256, with missile's
  own fastest primitives; OSCORE's: one AES-CCM call per message), the rest of each round
  trip, and the best ratio missile could reach with its cryptography and a rest as lean
  as aiocoap's;
- over HTTP, the CPU per request of the whole machine (client and server processes),
  split into what the HTTP stack costs (the plain echo), what MSL's four message steps
  cost (the in-memory round trip) and what is left for missile's engines, ASGI adapter
  and token state, with the ratio missile would reach if that last part cost nothing.

A peer whose package is missing is skipped with the reason printed and recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import inspect
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Protocol

from bench_state import entity_keys
from run import ECHO_APP, ROOT, _free_port, _load, _loop_factory, _stop, _wait_port, session_pair

from missile.cli.keys import write_private
from missile.encoding import EncoderFormat
from missile.errors import MslException
from missile.keyfile import KeyFile
from missile.messages import HeaderReceived, MessageReader, MessageWriter, PayloadReceived
from missile.messages.builder import build_request, build_response
from missile.messages.capabilities import DEFAULT_CAPABILITIES, MessageCapabilities

PAYLOAD_BYTES = 100
#: Concurrent clients of the HTTP comparison (the level issue #15 sets its target at).
HTTP_CLIENTS = 8
#: Server worker processes, as in the ``http`` section.
HTTP_WORKERS = 2
#: Round trips between two readings of the CPU clock: enough to make the reading's own
#: cost negligible, few enough to stop close to the time asked for.
BATCH = 50
#: Untimed round trips before measuring (caches, lazily built tables, first allocations).
WARMUP_ROUND_TRIPS = 200
OSCORE_ALGORITHM = "AES-CCM-16-64-128"
JWE_HEADER = json.dumps({"alg": "dir", "enc": "A128CBC-HS256"})

#: Targets of issue #15 (reported, not asserted): round trips as a ratio to OSCORE,
#: HTTP at 8 clients as a ratio to the HTTPS echo, binary wire bytes of the request.
TARGETS = {
    "missile_binary_to_oscore_min": 1.0,
    "missile_json_to_oscore_min": 0.6,
    "missile_binary_http_to_https_echo_min": 0.5,
    "missile_binary_request_wire_bytes_max": 800,
}


class PeerUnavailable(Exception):
    """A peer cannot be measured in this environment (its package is missing, or missile's
    binary format is not in this build); the message says why."""


class RoundTripPeer(Protocol):
    """One side-by-side peer: the three steps of a round trip, each on wire bytes.

    ``request`` is the client protecting a request; ``respond`` the server unprotecting it
    and protecting a response with the same payload; ``finish`` the client unprotecting
    the response and returning its payload. ``errors`` are the exceptions by which the
    peer refuses a message that does not verify."""

    name: str
    label: str
    errors: tuple[type[BaseException], ...]

    def request(self) -> bytes: ...

    def respond(self, wire: bytes) -> bytes: ...

    def finish(self, wire: bytes) -> bytes: ...


def round_trip(peer: RoundTripPeer, payload: bytes | None = None) -> tuple[int, int]:
    """One verified round trip; returns the request's and the response's wire bytes."""
    request = peer.request()
    response = peer.respond(request)
    data = peer.finish(response)
    if len(data) != PAYLOAD_BYTES or (payload is not None and data != payload):
        raise AssertionError(f"{peer.name}: the payload did not survive the round trip")
    return len(request), len(response)


# -- OSCORE (aiocoap) ----------------------------------------------------------------------


@functools.cache
def _oscore_context_type() -> type[Any]:
    """A pairwise OSCORE security context held in memory only, built from aiocoap's
    protect/unprotect/key-derivation mixins (its own context classes persist sequence
    numbers to files, which is not what is measured here)."""
    from aiocoap import oscore  # type: ignore[import-untyped]

    class MemoryContext(oscore.CanProtect, oscore.CanUnprotect, oscore.SecurityContextUtils):  # type: ignore[misc]
        def __init__(self, sender_id: bytes, recipient_id: bytes, secret: bytes, salt: bytes) -> None:
            self.alg_aead = oscore.algorithms[OSCORE_ALGORITHM]
            self.hashfun = oscore.hashfunctions["sha256"]
            self.id_context = None
            self.sender_id = sender_id
            self.recipient_id = recipient_id
            self.sender_sequence_number = 0
            self.echo_recovery = None  # no Echo-based recovery: the window starts empty
            self.recipient_replay_window = oscore.ReplayWindow(oscore.DEFAULT_WINDOWSIZE, lambda: None)
            self.recipient_replay_window.initialize_empty()
            self.derive_keys(salt, secret)

        def post_seqnoincrease(self) -> None:
            """Nothing to persist: the context lives as long as the benchmark."""

        def __repr__(self) -> str:  # keys stay out of any output
            return f"<MemoryContext sender={self.sender_id.hex()} recipient={self.recipient_id.hex()}>"

    return MemoryContext


class OscorePeer:
    """OSCORE between a client (sender ID 0x01) and a server (empty sender ID), sharing a
    master secret and salt, on CoAP messages encoded to bytes and decoded back."""

    name = "oscore"
    label = f"OSCORE (aiocoap, {OSCORE_ALGORITHM})"

    def __init__(self, payload: bytes) -> None:
        try:
            import cryptography.exceptions
            from aiocoap import Message, error, numbers, oscore
        except ImportError as exc:
            raise PeerUnavailable(f"aiocoap OSCORE not installed ({exc})") from exc
        self._message, self._numbers = Message, numbers
        context = _oscore_context_type()
        secret, salt = os.urandom(16), os.urandom(8)
        self.client = context(b"\x01", b"", secret, salt)
        self.server = context(b"", b"\x01", secret, salt)
        self.payload = payload
        self.errors: tuple[type[BaseException], ...] = (
            oscore.ProtectionInvalid, error.Error, cryptography.exceptions.InvalidTag
        )  # fmt: skip
        self._request_id: Any = None
        self._mid = 0

    def request(self) -> bytes:
        outer, self._request_id = self.client.protect(self._message(code=self._numbers.POST, payload=self.payload))
        self._mid = (self._mid + 1) & 0xFFFF
        outer.mtype, outer.mid, outer.token = self._numbers.CON, self._mid, b"\x42\x17"
        return bytes(outer.encode())

    def respond(self, wire: bytes) -> bytes:
        incoming = self._message.decode(wire)
        plain, request_id = self.server.unprotect(incoming)
        if plain.code != self._numbers.POST:
            raise AssertionError("OSCORE: the request code did not survive")
        reply = self._message(code=self._numbers.CHANGED, payload=plain.payload)
        outer, _ = self.server.protect(reply, request_id)
        outer.mtype, outer.mid, outer.token = self._numbers.ACK, incoming.mid, incoming.token
        return bytes(outer.encode())

    def finish(self, wire: bytes) -> bytes:
        incoming = self._message.decode(wire)
        plain, _ = self.client.unprotect(incoming, self._request_id)
        return bytes(plain.payload)


# -- JWE (jwcrypto) -------------------------------------------------------------------------


class JwePeer:
    """JWE compact, ``dir`` with a shared 256-bit key, ``A128CBC-HS256``."""

    name = "jwe"
    label = "JWE compact (jwcrypto, dir, A128CBC-HS256)"

    def __init__(self, payload: bytes) -> None:
        try:
            from jwcrypto import common, jwe, jwk  # type: ignore[import-untyped]
        except ImportError as exc:
            raise PeerUnavailable(f"jwcrypto not installed ({exc})") from exc
        self._jwe = jwe
        self._key = jwk.JWK(kty="oct", k=jwk.base64url_encode(os.urandom(32)))
        self.payload = payload
        self.errors: tuple[type[BaseException], ...] = (common.JWException, ValueError)

    def _seal(self, data: bytes) -> bytes:
        token = self._jwe.JWE(data, protected=JWE_HEADER)
        token.add_recipient(self._key)
        return str(token.serialize(compact=True)).encode("ascii")

    def _open(self, wire: bytes) -> bytes:
        token = self._jwe.JWE()
        token.deserialize(wire.decode("ascii"), key=self._key)
        return bytes(token.payload)

    def request(self) -> bytes:
        return self._seal(self.payload)

    def respond(self, wire: bytes) -> bytes:
        return self._seal(self._open(wire))

    def finish(self, wire: bytes) -> bytes:
        return self._open(wire)


# -- SecretBox (PyNaCl) ------------------------------------------------------------------------


class SecretBoxPeer:
    """A bare XSalsa20-Poly1305 box with a random nonce each way: the floor."""

    name = "secretbox"
    label = "SecretBox (PyNaCl, floor)"

    def __init__(self, payload: bytes) -> None:
        try:
            import nacl.exceptions
            import nacl.secret
        except ImportError as exc:
            raise PeerUnavailable(f"PyNaCl not installed ({exc})") from exc
        self._box = nacl.secret.SecretBox(os.urandom(nacl.secret.SecretBox.KEY_SIZE))
        self.payload = payload
        self.errors: tuple[type[BaseException], ...] = (nacl.exceptions.CryptoError,)

    def request(self) -> bytes:
        return bytes(self._box.encrypt(self.payload))

    def respond(self, wire: bytes) -> bytes:
        return bytes(self._box.encrypt(self._box.decrypt(wire)))

    def finish(self, wire: bytes) -> bytes:
        return bytes(self._box.decrypt(wire))


# -- missile ------------------------------------------------------------------------------------


def binary_format() -> EncoderFormat | None:
    """missile's binary encoder format when this build can negotiate it (the format exists,
    requests can be written in it and the default capabilities advertise it), else None."""
    fmt = getattr(EncoderFormat, "MISSILE_CBOR", None)
    if not isinstance(fmt, EncoderFormat) or "encoder_format" not in inspect.signature(build_request).parameters:
        return None
    return fmt if fmt in DEFAULT_CAPABILITIES.encoder_formats else None


def _capabilities(fmt: EncoderFormat) -> MessageCapabilities:
    """The capabilities that make both messages travel in ``fmt``: JSON only for JSON,
    missile's default (binary first) for binary: each side writes the first of its formats
    the other reads."""
    if fmt is EncoderFormat.JSON:
        return dataclasses.replace(DEFAULT_CAPABILITIES, encoder_formats=(EncoderFormat.JSON,))
    return DEFAULT_CAPABILITIES


def _read(reader: MessageReader, wire: bytes) -> tuple[HeaderReceived, bytes]:
    """The header and the payload of one whole message."""
    header: HeaderReceived | None = None
    data = b""
    for event in reader.feed(wire) + reader.end_of_stream():  # the whole message, as at the end of a stream
        if type(event) is HeaderReceived:
            header = event
        elif type(event) is PayloadReceived:
            data += event.data
    if header is None or not reader.done:
        raise AssertionError("missile: an incomplete message")
    return header, data


class MissilePeer:
    """missile's client and server under an established master token, both messages in
    one encoder format."""

    errors: tuple[type[BaseException], ...] = (MslException,)

    def __init__(self, payload: bytes, fmt: EncoderFormat | None) -> None:
        if fmt is None:
            raise PeerUnavailable("pending: binary format not available")
        self.fmt = fmt
        self.name = "missile_json" if fmt is EncoderFormat.JSON else "missile_binary"
        self.label = f"missile {'JSON' if fmt is EncoderFormat.JSON else 'binary (' + fmt.value + ')'}"
        self.server, self.client = session_pair(encoder_format=fmt)
        self.payload = payload
        self._caps = _capabilities(fmt)
        request = self.request()
        if request[0] != fmt.identifier:
            raise PeerUnavailable(f"pending: a request asked in {fmt.value} was written in another format")

    def request(self) -> bytes:
        built = build_request(self.client, encoder_format=self.fmt, capabilities=self._caps)
        writer = MessageWriter(built.header, built.payload_crypto_context)
        return writer.header_bytes() + writer.write(self.payload) + writer.close()

    def respond(self, wire: bytes) -> bytes:
        header, data = _read(MessageReader(self.server, single_message=True), wire)
        built = build_response(self.server, header.header, capabilities=self._caps)
        writer = MessageWriter(built.header, built.payload_crypto_context)
        response = writer.header_bytes() + writer.write(data) + writer.close()
        if response[0] != self.fmt.identifier:
            raise AssertionError(f"missile: the response was not written in {self.fmt.value}")
        return response

    def finish(self, wire: bytes) -> bytes:
        return _read(MessageReader(self.client, single_message=True), wire)[1]


def peers(payload: bytes) -> tuple[list[RoundTripPeer], dict[str, str]]:
    """Every peer that can run here, and the reason for each that cannot."""
    makers: dict[str, Callable[[], RoundTripPeer]] = {
        "oscore": lambda: OscorePeer(payload),
        "jwe": lambda: JwePeer(payload),
        "secretbox": lambda: SecretBoxPeer(payload),
        "missile_json": lambda: MissilePeer(payload, EncoderFormat.JSON),
        "missile_binary": lambda: MissilePeer(payload, binary_format()),
    }
    ready: list[RoundTripPeer] = []
    missing: dict[str, str] = {}
    for name, make in makers.items():
        try:
            ready.append(make())
        except PeerUnavailable as exc:
            missing[name] = str(exc)
    return ready, missing


# -- in-memory round trips ------------------------------------------------------------------------


def _note(what: str, reason: str) -> None:
    """The skip line on stderr (the table repeats it, shortened)."""
    print(f"{what} {reason}" if reason.startswith("pending") else f"{what} skipped: {reason}", file=sys.stderr)


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Round trips per CPU second of this process over at least ``seconds``."""
    gc.collect()
    n = 0
    t0 = time.process_time()
    while True:
        for _ in range(BATCH):
            fn()
        n += BATCH
        elapsed = time.process_time() - t0
        if elapsed > seconds:
            return n / elapsed


def _verified(ready: list[RoundTripPeer], payload: bytes, missing: dict[str, str]) -> dict[str, Any]:
    """Each peer's wire bytes from one round trip with the real payload, then warmed up. A
    peer failing here is left out with the reason (missile's binary format is under
    development: a broken state of it must not stop the other figures)."""
    out: dict[str, Any] = {}
    for peer in list(ready):
        try:
            request_bytes, response_bytes = round_trip(peer, payload)
        except Exception as exc:
            missing[peer.name] = f"failed: {type(exc).__name__}: {exc}"
            ready.remove(peer)
            continue
        out[peer.name] = {"label": peer.label, "request_wire_bytes": request_bytes,
                          "response_wire_bytes": response_bytes, "all_round_trips_per_s": []}  # fmt: skip
        for _ in range(WARMUP_ROUND_TRIPS):
            round_trip(peer)
    return out


def bench_round_trips(seconds: float, repeats: int) -> dict[str, Any]:
    """Round trips per CPU second of every peer, best of ``repeats`` alternating rounds,
    with wire bytes and the ratios to OSCORE and to the SecretBox floor."""
    payload = os.urandom(PAYLOAD_BYTES)
    ready, missing = peers(payload)
    out = _verified(ready, payload, missing)
    for _ in range(repeats):
        for peer in ready:  # in alternation (see the module docstring)
            out[peer.name]["all_round_trips_per_s"].append(_rate(functools.partial(round_trip, peer), seconds))
    for figures in out.values():
        figures["round_trips_per_s"] = max(figures["all_round_trips_per_s"])
        figures["us_per_round_trip"] = 1e6 / figures["round_trips_per_s"]
    for name, reason in missing.items():
        _note(f"peers: {name}", reason)
        out[name] = {"pending" if reason.startswith("pending") else "skipped": reason}
    for name in ("oscore", "secretbox"):
        base = out.get(name, {}).get("round_trips_per_s")
        for figures in out.values():
            if base and "round_trips_per_s" in figures:
                figures[f"ratio_to_{name}"] = figures["round_trips_per_s"] / base
    _crypto_bounds(out, seconds / 2, repeats)
    return out


# -- what bounds the round trip: the cryptography each protocol cannot avoid ----------------------

#: AES-CBC plaintexts missile encrypts in one binary round trip (header data and payload
#: chunk of the request, then of the response), and ciphertexts it decrypts, once the
#: server has verified the session's master token (it keeps a verified token, by its
#: exact bytes): the sizes of the binary messages measured here, within a block. At
#: these sizes the cost of a call, not of a byte, dominates.
MSL_ENCRYPTED = (94, 154, 94, 154)
MSL_DECRYPTED = (96, 160, 96, 160)
#: AES-CCM plaintexts OSCORE protects in one round trip (request, response), with the
#: size of the associated data each is bound to.
OSCORE_SEALED = (101, 101)
OSCORE_AAD_BYTES = 12


def msl_crypto_round_trip() -> Callable[[], None]:
    """The cryptography of one missile round trip and nothing else, with missile's own
    primitives at their fastest (a kept :class:`~missile.crypto.cbc.CbcKey`, a pre-keyed
    HMAC copied per use): per envelope written, a random IV, AES-128-CBC and an
    HMAC-SHA256 over the IV and ciphertext; per envelope read, that HMAC verified and
    the ciphertext decrypted. MSL protects the header data and each payload chunk
    separately, so a message costs two of each where OSCORE's costs one AEAD call."""
    from cryptography.hazmat.primitives import hashes, hmac
    from cryptography.hazmat.primitives.ciphers import algorithms

    from missile.crypto.cbc import CbcKey

    key = CbcKey(algorithms.AES(os.urandom(16)))
    template = hmac.HMAC(os.urandom(32), hashes.SHA256())
    plaintexts = [os.urandom(n) for n in MSL_ENCRYPTED]
    sealed = []
    for size in MSL_DECRYPTED:
        iv = os.urandom(16)
        ciphertext = key.encrypt(iv, os.urandom(size - 16))
        mac = template.copy()
        mac.update(iv + ciphertext)
        sealed.append((iv, ciphertext, mac.finalize()))

    def run() -> None:
        for plaintext in plaintexts:
            iv = os.urandom(16)
            ciphertext = key.encrypt(iv, plaintext)
            mac = template.copy()
            mac.update(iv + ciphertext)
            mac.finalize()
        for iv, ciphertext, tag in sealed:
            mac = template.copy()
            mac.update(iv + ciphertext)
            mac.verify(tag)
            key.decrypt(iv, ciphertext)

    return run


def oscore_crypto_round_trip() -> Callable[[], None] | None:
    """The cryptography of one OSCORE round trip and nothing else: AES-CCM-16-64-128
    (cryptography's ``AESCCM``, as aiocoap uses it) sealing the request and the response
    and opening each; None without cryptography's AESCCM."""
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESCCM
    except ImportError:  # pragma: no cover - every supported cryptography has it
        return None
    aead = AESCCM(os.urandom(16), tag_length=8)
    aad = os.urandom(OSCORE_AAD_BYTES)
    messages = [(os.urandom(13), os.urandom(n)) for n in OSCORE_SEALED]
    sealed = [(nonce, aead.encrypt(nonce, data, aad)) for nonce, data in messages]

    def run() -> None:
        for nonce, data in messages:
            aead.encrypt(nonce, data, aad)
        for nonce, ciphertext in sealed:
            aead.decrypt(nonce, ciphertext, aad)

    return run


def _crypto_bounds(out: dict[str, Any], seconds: float, repeats: int) -> None:
    """What bounds missile against OSCORE: each protocol's cryptography alone (best of
    ``repeats``), the rest of each round trip, and the ratio missile would reach with
    its own cryptography and a rest as lean as OSCORE's."""
    oscore = out.get("oscore", {})
    oscore_crypto = oscore_crypto_round_trip()
    if "us_per_round_trip" not in oscore or oscore_crypto is None:
        return
    msl_crypto = msl_crypto_round_trip()
    msl_us = min(1e6 / _rate(msl_crypto, seconds) for _ in range(repeats))
    oscore_us = min(1e6 / _rate(oscore_crypto, seconds) for _ in range(repeats))
    oscore_rest = oscore["us_per_round_trip"] - oscore_us
    oscore["crypto_us_per_round_trip"] = oscore_us
    for name in ("missile_json", "missile_binary"):
        figures = out.get(name, {})
        if "us_per_round_trip" not in figures:
            continue
        figures["crypto_us_per_round_trip"] = msl_us
        figures["rest_us_per_round_trip"] = figures["us_per_round_trip"] - msl_us
        figures["oscore_rest_us_per_round_trip"] = oscore_rest
        figures["best_ratio_with_oscore_rest"] = oscore["us_per_round_trip"] / (msl_us + oscore_rest)


# -- HTTP ------------------------------------------------------------------------------------------


@contextmanager
def _server(argv: list[str], port: int, skips: dict[str, str], name: str) -> Iterator[subprocess.Popen[bytes] | None]:
    """A server subprocess; yields it once it listens, else None (the reason in ``skips``)."""
    proc = subprocess.Popen(argv, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_port(port, proc)
    except RuntimeError as exc:
        skips[name] = str(exc)
    try:
        yield None if name in skips else proc
    finally:
        _stop(proc)


def _tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and every descendant still running
    (a server's worker processes), from /proc; 0 off Linux."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in tasks:
            with contextlib.suppress(OSError):
                pending.extend(int(child) for child in (task / "children").read_text().split())
    return total


async def _load_with_cpu(
    call: Callable[[], Any], server: subprocess.Popen[bytes] | None, seconds: float, max_count: int, warmup: float
) -> dict[str, Any]:
    """:func:`run._load`, plus CPU time per request (over every request, warm-up
    included) of this process (the client) and of the server's processes."""
    done = 0

    async def counted() -> None:
        nonlocal done
        await call()
        done += 1

    server_before = _tree_cpu_seconds(server.pid) if server is not None else 0.0
    client_before = time.process_time()
    result = await _load(counted, HTTP_CLIENTS, seconds, max_count, warmup)
    client_cpu = time.process_time() - client_before
    server_cpu = (_tree_cpu_seconds(server.pid) if server is not None else 0.0) - server_before
    if done:
        result["client_cpu_us_per_request"] = client_cpu / done * 1e6
        result["server_cpu_us_per_request"] = server_cpu / done * 1e6
        result["cpu_us_per_request"] = (client_cpu + server_cpu) / done * 1e6
    return result


def _tls_files(tmp: Path, skips: dict[str, str]) -> ssl.SSLContext | None:
    """A throwaway CA's certificate for 127.0.0.1 in ``tmp``, and a client context trusting it."""
    try:
        import trustme
    except ImportError as exc:
        skips["https_echo"] = f"trustme not installed ({exc})"
        return None
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
    (tmp / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def _uvicorn(tmp: Path, port: int, tls: bool) -> list[str]:
    argv = [sys.executable, "-m", "uvicorn", "echo_app:app", "--app-dir", str(tmp), "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(HTTP_WORKERS), "--log-level", "warning"]  # fmt: skip
    if tls:
        argv += ["--ssl-keyfile", str(tmp / "key.pem"), "--ssl-certfile", str(tmp / "cert.pem")]
    return argv


def _missile_serve(tmp: Path, port: int) -> list[str]:
    missile_bin = Path(sys.executable).with_name("missile")
    command = [str(missile_bin)] if missile_bin.exists() else [sys.executable, "-m", "missile.cli"]
    return [*command, "serve", "--keys", str(tmp / "server.json"), "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(HTTP_WORKERS), "--state", str(tmp / "state.db"), "--log-level", "warning"]  # fmt: skip


def _echo_call(transport: Any, payload: bytes) -> Callable[[], Any]:
    async def call() -> None:
        # The same HTTP client stack as the ``http`` section's echo ceiling, no MSL.
        channel = await transport.connect()
        await channel.write(payload)
        await channel.finish()
        body = b""
        while chunk := await channel.read():
            body += chunk
        await channel.close()
        assert body == payload

    return call


async def _missile_client(
    client_keys: dict[str, Any], port: int, fmt: EncoderFormat, payload: bytes, skips: dict[str, str]
) -> tuple[Any, Callable[[], Any]] | None:
    """A session-holding MslClient that writes ``fmt`` (after negotiating it), or None."""
    from missile.engine.client import MslClient
    from missile.keyx.requests import key_request_factory
    from missile.messages.negotiation import request_format
    from missile.profiles import context_from_keyfile
    from missile.transport.pooled import PooledHttpTransport

    name = "missile_json" if fmt is EncoderFormat.JSON else "missile_binary"
    keys = KeyFile.from_dict(json.loads(json.dumps(client_keys)))
    keys.time_ms = None
    ctx = context_from_keyfile(keys, role="client").ctx
    transport = PooledHttpTransport(f"http://127.0.0.1:{port}/", max_idle=HTTP_CLIENTS)
    caps = _capabilities(fmt)
    client = MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, keys), capabilities=caps)
    for _ in range(2):  # the session, then a request written in the negotiated format
        assert (await client.request(payload)).payload == payload
    if request_format(ctx.store, caps) is not fmt:
        skips[name] = f"pending: the server did not negotiate {fmt.value}"
        await transport.aclose()
        return None

    async def call() -> None:
        assert len((await client.request(payload)).payload) == PAYLOAD_BYTES

    return transport, call


async def _measure_http(
    targets: dict[str, tuple[Any, Callable[[], Any]]], servers: dict[str, subprocess.Popen[bytes] | None],
    seconds: float, max_count: int, repeats: int, skips: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """Best of ``repeats`` alternating runs per target, with the least CPU per request of
    any run; a target that fails under load is dropped with the reason in ``skips`` (as
    the state section does), the others go on."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    warmup = min(0.5, seconds / 4)
    names = list(targets)
    for round_ in range(repeats):
        # In alternation, each round starting one target later: measured one after
        # another on a shared machine, no target should always be the first (or last).
        start = round_ % len(names) if names else 0
        for name in names[start:] + names[:start]:
            if name in skips:
                continue
            call = targets[name][1]
            try:
                runs[name].append(await _load_with_cpu(call, servers.get(name), seconds, max_count, warmup))
            except Exception as exc:
                skips[name] = f"failed under load: {type(exc).__name__}: {exc}"
    out: dict[str, Any] = {}
    for name, results in runs.items():
        if name in skips or not results:
            continue
        best = max(results, key=lambda r: r["req_per_s"])
        best["all_req_per_s"] = [r["req_per_s"] for r in results]
        for key in ("cpu_us_per_request", "client_cpu_us_per_request", "server_cpu_us_per_request"):
            values = [r[key] for r in results if key in r]
            if values:
                best[key] = min(values)
        out[name] = best
    return out


def bench_http_peers(seconds: float, max_count: int, repeats: int) -> dict[str, Any]:
    """requests/s at :data:`HTTP_CLIENTS` clients of missile (JSON and binary), the HTTPS
    echo and the plain echo, best of ``repeats`` alternating runs, with the ratios."""
    from missile.transport.pooled import PooledHttpTransport

    payload = os.urandom(PAYLOAD_BYTES)
    skips: dict[str, str] = {}
    out: dict[str, Any] = {"clients": HTTP_CLIENTS, "workers": HTTP_WORKERS, "payload_bytes": PAYLOAD_BYTES,
                           "client": "PooledHttpTransport (+ MslClient for missile)",
                           "client_loop": "uvloop" if _loop_factory() else "asyncio"}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        # One PSK entity per missile client: a server keeps one session per entity (a new
        # master token revokes the older ones), so two clients of one identity would
        # take each other's sessions away.
        server_keys, client_keys = entity_keys(2)
        write_private(tmp / "server.json", server_keys)
        (tmp / "echo_app.py").write_text(ECHO_APP)
        tls = _tls_files(tmp, skips)
        ports = {"missile": _free_port(), "http_echo": _free_port(), "https_echo": _free_port()}
        up: dict[str, subprocess.Popen[bytes] | None] = {
            "missile": stack.enter_context(_server(_missile_serve(tmp, ports["missile"]), ports["missile"],
                                                   skips, "missile_json")),
            "http_echo": stack.enter_context(_server(_uvicorn(tmp, ports["http_echo"], False), ports["http_echo"],
                                                     skips, "http_echo"))}  # fmt: skip
        if tls is not None:
            up["https_echo"] = stack.enter_context(
                _server(_uvicorn(tmp, ports["https_echo"], True), ports["https_echo"], skips, "https_echo")
            )
        time.sleep(1.0)  # let every worker come up (as the http section does)

        async def run() -> dict[str, Any]:
            targets: dict[str, tuple[Any, Callable[[], Any]]] = {}
            try:
                if not up["missile"]:
                    skips["missile_binary"] = skips["missile_json"]
                else:
                    for fmt, keys in zip((EncoderFormat.JSON, binary_format()), client_keys, strict=True):
                        name = "missile_json" if fmt is EncoderFormat.JSON else "missile_binary"
                        if fmt is None:
                            skips[name] = "pending: binary format not available"
                            continue
                        try:
                            made = await _missile_client(keys, ports["missile"], fmt, payload, skips)
                        except Exception as exc:  # e.g. the binary format in a broken state
                            skips[name] = f"failed: {type(exc).__name__}: {exc}"
                            continue
                        if made is not None:
                            targets[name] = made
                for name, scheme, context in (("https_echo", "https", tls), ("http_echo", "http", None)):
                    if up.get(name):
                        transport = PooledHttpTransport(f"{scheme}://127.0.0.1:{ports[name]}/",
                                                        max_idle=HTTP_CLIENTS, ssl_context=context)  # fmt: skip
                        targets[name] = (transport, _echo_call(transport, payload))
                servers = dict(up, missile_json=up["missile"], missile_binary=up["missile"])
                return await _measure_http(targets, servers, seconds, max_count, repeats, skips)
            finally:
                for transport, _ in targets.values():
                    await transport.aclose()

        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            out.update(runner.run(run()))
    _http_ratios(out)
    for name, reason in skips.items():
        _note(f"peers: HTTP {name}", reason)
        out[name] = {"pending" if reason.startswith("pending") else "skipped": reason}
    return out


def _http_ratios(out: dict[str, Any]) -> None:
    https = out.get("https_echo", {}).get("req_per_s")
    plain = out.get("http_echo", {}).get("req_per_s")
    for name in ("missile_json", "missile_binary"):
        if https and "req_per_s" in out.get(name, {}):
            out[name]["ratio_to_https_echo"] = out[name]["req_per_s"] / https
    if https and plain:
        out["https_echo"]["ratio_to_http_echo"] = https / plain


def _http_bounds(trips: dict[str, Any], http: dict[str, Any]) -> None:
    """What bounds missile over HTTP against the HTTPS echo, in CPU per request of the
    whole machine (the client process and the server's processes): the plain HTTP echo
    is what the HTTP stack costs, the in-memory round trip what MSL's four message steps
    cost; what is left is missile's engines (MslClient, MslServer), its ASGI adapter and
    the token state. ``best_ratio_without_engine`` is the ratio missile would reach if
    those cost nothing: the HTTP stack plus the messages, against the HTTPS echo."""
    https = http.get("https_echo", {}).get("cpu_us_per_request")
    plain = http.get("http_echo", {}).get("cpu_us_per_request")
    for name in ("missile_json", "missile_binary"):
        figures = http.get(name, {})
        messages = trips.get(name, {}).get("us_per_round_trip")
        if not (https and plain and messages and "cpu_us_per_request" in figures):
            continue
        figures["cpu_ratio_to_https_echo"] = https / figures["cpu_us_per_request"]
        figures["messages_us_per_request"] = messages
        figures["http_stack_us_per_request"] = plain
        figures["engine_us_per_request"] = figures["cpu_us_per_request"] - plain - messages
        figures["best_ratio_without_engine"] = https / (plain + messages)


def bench_peers(seconds: float, http_seconds: float, max_count: int, repeats: int) -> dict[str, Any]:
    """The whole section: in-memory round trips, then HTTP, then what bounds HTTP."""
    trips = bench_round_trips(seconds, repeats)
    http = bench_http_peers(http_seconds, max_count, repeats)
    _http_bounds(trips, http)
    return {
        "payload_bytes": PAYLOAD_BYTES,
        "timing": "round trips: CPU time of this process; HTTP: wall time, and CPU time of client and servers",
        "round_trip": trips,
        "http": http,
        "targets": TARGETS,
    }


# -- reporting (called by run.py) -------------------------------------------------------------------

_ROUND_TRIP_TARGETS = {"missile_json": "missile_json_to_oscore_min", "missile_binary": "missile_binary_to_oscore_min"}


def _status(figures: dict[str, Any]) -> str:
    if "pending" in figures:
        return str(figures["pending"])
    return f"skipped ({figures['skipped'][:80]})" if "skipped" in figures else "not measured"


def peers_rows(peers_result: dict[str, Any], fmt: Callable[[float], str]) -> list[tuple[str, str, str, str, str]]:
    """Table rows for run.py: figure, OSCORE (or the HTTPS echo) as the ceiling, ratio."""
    rows: list[tuple[str, str, str, str, str]] = []
    trips = peers_result["round_trip"]
    oscore = trips.get("oscore", {}).get("round_trips_per_s")
    for name, figures in trips.items():
        if "round_trips_per_s" not in figures:
            rows.append((f"peers round trip {name}: {_status(figures)}", "", "", "", ""))
            continue
        target = TARGETS.get(_ROUND_TRIP_TARGETS.get(name, ""))
        label = f"peers round trip {figures['label']}" + (f" vs OSCORE (>={target})" if target else "")
        ratio = f"{figures['ratio_to_oscore']:.2f}" if "ratio_to_oscore" in figures else ""
        rows.append((label, fmt(figures["round_trips_per_s"]), fmt(oscore) if oscore else "", ratio, "1/s"))
        limit = TARGETS["missile_binary_request_wire_bytes_max"] if name == "missile_binary" else None
        wire = f"{figures['request_wire_bytes']:,}"
        rows.append((f"  wire bytes request (response){f' (<={limit})' if limit else ''}", wire, "", "",
                     f"B ({figures['response_wire_bytes']:,})"))  # fmt: skip
        rows.extend(_round_trip_bound_rows(figures, trips.get("oscore", {})))
    http = peers_result["http"]
    https = http.get("https_echo", {})
    for name in ("missile_binary", "missile_json"):
        figures = http.get(name, {})
        if "req_per_s" not in figures:
            rows.append((f"peers HTTP {HTTP_CLIENTS} clients {name}: {_status(figures)}", "", "", "", ""))
            continue
        wanted = " (>=0.5)" if name == "missile_binary" else ""
        ratio = f"{figures['ratio_to_https_echo']:.2f}" if "ratio_to_https_echo" in figures else ""
        rows.append((f"peers HTTP {HTTP_CLIENTS} clients {name} vs HTTPS echo{wanted}", fmt(figures["req_per_s"]),
                     fmt(https["req_per_s"]) if "req_per_s" in https else "", ratio, "req/s"))  # fmt: skip
        rows.extend(_http_bound_rows(figures, https))
    if "req_per_s" in https:
        plain = http.get("http_echo", {})
        ratio = f"{https['ratio_to_http_echo']:.2f}" if "ratio_to_http_echo" in https else ""
        rows.append((f"peers HTTP {HTTP_CLIENTS} clients HTTPS echo vs plain echo", fmt(https["req_per_s"]),
                     fmt(plain["req_per_s"]) if "req_per_s" in plain else "", ratio, "req/s"))  # fmt: skip
    elif https:
        rows.append((f"peers HTTP HTTPS echo: {_status(https)}", "", "", "", ""))
    return rows


def _round_trip_bound_rows(figures: dict[str, Any], oscore: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """What bounds a missile round trip against OSCORE's (see :func:`_crypto_bounds`)."""
    if "best_ratio_with_oscore_rest" not in figures:
        return []
    return [
        ("  bound: crypto alone, missile (8 AES-CBC+HMAC) / OSCORE (4 AES-CCM)",
         f"{figures['crypto_us_per_round_trip']:.1f}", f"{oscore['crypto_us_per_round_trip']:.1f}", "", "us"),
        ("  bound: the rest, missile / OSCORE", f"{figures['rest_us_per_round_trip']:.1f}",
         f"{figures['oscore_rest_us_per_round_trip']:.1f}", "", "us"),
        ("  bound: best ratio, missile's crypto + a rest as lean as OSCORE's", "", "",
         f"{figures['best_ratio_with_oscore_rest']:.2f}", ""),
    ]  # fmt: skip


def _http_bound_rows(figures: dict[str, Any], https: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """What bounds missile over HTTP against the HTTPS echo (see :func:`_http_bounds`)."""
    if "best_ratio_without_engine" not in figures:
        return []
    return [
        ("  CPU per request, client + server (HTTPS echo)", f"{figures['cpu_us_per_request']:.0f}",
         f"{https['cpu_us_per_request']:.0f}", f"{figures['cpu_ratio_to_https_echo']:.2f}", "us"),
        ("  bound: HTTP stack (plain echo) / MSL messages / engines + state",
         f"{figures['http_stack_us_per_request']:.0f}", f"{figures['messages_us_per_request']:.0f}",
         f"{figures['engine_us_per_request']:.0f}", "us"),
        ("  bound: best ratio, engines + state costing nothing", "", "",
         f"{figures['best_ratio_without_engine']:.2f}", ""),
    ]  # fmt: skip


def peers_targets(peers_result: dict[str, Any]) -> dict[str, Any]:
    """The issue #15 targets that could be evaluated in this run (reported, not asserted)."""
    out: dict[str, Any] = {}
    trips, http = peers_result["round_trip"], peers_result["http"]
    for name, key in _ROUND_TRIP_TARGETS.items():
        if "ratio_to_oscore" in trips.get(name, {}):
            value = trips[name]["ratio_to_oscore"]
            out[f"peers_{name}_vs_oscore"] = {"value": value, "target": TARGETS[key], "met": value >= TARGETS[key]}
    binary = trips.get("missile_binary", {})
    if "request_wire_bytes" in binary:
        value, limit = binary["request_wire_bytes"], TARGETS["missile_binary_request_wire_bytes_max"]
        out["peers_missile_binary_request_wire_bytes"] = {"value": value, "target": limit, "met": value <= limit}
    if "ratio_to_https_echo" in http.get("missile_binary", {}):
        value, target = http["missile_binary"]["ratio_to_https_echo"], TARGETS["missile_binary_http_to_https_echo_min"]
        out["peers_missile_binary_http_vs_https_echo"] = {"value": value, "target": target, "met": value >= target}
    return out


__all__ = [
    "PAYLOAD_BYTES",
    "TARGETS",
    "JwePeer",
    "MissilePeer",
    "OscorePeer",
    "PeerUnavailable",
    "RoundTripPeer",
    "SecretBoxPeer",
    "bench_peers",
    "binary_format",
    "peers",
    "peers_rows",
    "peers_targets",
    "round_trip",
]

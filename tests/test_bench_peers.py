"""Smoke test of benchmarks/bench_peers.py: every peer's round trip really verifies.

The benchmark compares round-trip rates; a peer whose "unprotect" did not check anything
would look fast for the wrong reason. Each round trip runs here once, untimed, and then
with a byte of the request or the response changed, which the peer must refuse. A peer
whose package is not installed is skipped, as the benchmark skips it.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_peers
from bench_peers import PAYLOAD_BYTES, PeerUnavailable, RoundTripPeer, round_trip

from missile.encoding import EncoderFormat

NAMES = ("oscore", "jwe", "secretbox", "missile_json", "missile_binary")


@functools.cache
def _peer(name: str) -> RoundTripPeer | str:
    payload = bytes(range(PAYLOAD_BYTES))
    try:
        if name == "oscore":
            return bench_peers.OscorePeer(payload)
        if name == "jwe":
            return bench_peers.JwePeer(payload)
        if name == "secretbox":
            return bench_peers.SecretBoxPeer(payload)
        fmt = EncoderFormat.JSON if name == "missile_json" else bench_peers.binary_format()
        return bench_peers.MissilePeer(payload, fmt)
    except PeerUnavailable as exc:
        return str(exc)


def peer(name: str) -> RoundTripPeer:
    made = _peer(name)
    if isinstance(made, str):
        pytest.skip(f"{name}: {made}")
    return made


def _tampered(wire: bytes, *, whole: bool) -> list[bytes]:
    """The wire with one bit changed at a few places: near its end, which in every format
    here is ciphertext or an authentication tag (for missile the payload chunk), and with
    ``whole`` also a quarter of the way in (for missile the master token).

    The bit is 0x10: in a base64 character it either changes one of the character's high
    bits, which always carry data (the low bits of a last character may be padding), or
    makes the character invalid.

    Not ``whole`` for responses: a missile response carries the server's master token,
    which the client cannot verify (it is protected with the server's own keys, opaque to
    the client); a change there passes the client and meets the server's check on the next
    request. The request tests change it: the server verifies every byte it gets."""
    positions = [len(wire) - len(wire) // 8, len(wire) - 8] + ([len(wire) // 4] if whole else [])
    out = []
    for position in positions:
        changed = bytearray(wire)
        changed[position] ^= 0x10
        out.append(bytes(changed))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_carries_the_payload(name: str) -> None:
    p = peer(name)
    request_bytes, response_bytes = round_trip(p, bytes(range(PAYLOAD_BYTES)))
    assert request_bytes > PAYLOAD_BYTES and response_bytes > PAYLOAD_BYTES


@pytest.mark.parametrize("name", NAMES)
def test_tampered_request_is_refused(name: str) -> None:
    p = peer(name)
    wire = p.request()
    for bad in _tampered(wire, whole=True):
        with pytest.raises(p.errors):
            p.respond(bad)
    # The untouched request still passes: the refusals were about the change.
    assert p.finish(p.respond(wire)) == bytes(range(PAYLOAD_BYTES))


@pytest.mark.parametrize("name", NAMES)
def test_tampered_response_is_refused(name: str) -> None:
    p = peer(name)
    response = p.respond(p.request())
    for bad in _tampered(response, whole=False):
        with pytest.raises(p.errors):
            p.finish(bad)
    assert p.finish(response) == bytes(range(PAYLOAD_BYTES))


def test_oscore_refuses_a_replayed_request() -> None:
    from aiocoap import oscore  # type: ignore[import-untyped]

    p = peer("oscore")
    wire = p.request()
    p.respond(wire)
    with pytest.raises(oscore.ReplayError):
        p.respond(wire)


def test_missile_binary_hook_reports_pending_when_unavailable() -> None:
    with pytest.raises(PeerUnavailable, match="pending: binary format not available"):
        bench_peers.MissilePeer(b"x" * PAYLOAD_BYTES, None)


def test_report_shows_pending_binary_and_skipped_peers() -> None:
    result = {
        "round_trip": {
            "oscore": {"skipped": "aiocoap OSCORE not installed (No module named 'aiocoap')"},
            "missile_json": {"label": "missile JSON", "round_trips_per_s": 4000.0, "request_wire_bytes": 2219,
                             "response_wire_bytes": 2219},
            "missile_binary": {"pending": "pending: binary format not available"},
        },
        "http": {"missile_binary": {"pending": "pending: binary format not available"}},
    }  # fmt: skip
    rows = [row[0] for row in bench_peers.peers_rows(result, str)]
    assert any("missile_binary: pending: binary format not available" in row for row in rows)
    assert any("oscore: skipped (aiocoap OSCORE not installed" in row for row in rows)
    # Without OSCORE or a binary figure there is no ratio to judge: no target is claimed.
    assert bench_peers.peers_targets(result) == {}


# -- what bounds the round trip and HTTP ----------------------------------------------------------


def test_crypto_model_matches_what_a_binary_round_trip_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 'crypto alone' figure models missile's AES-CBC calls of one binary round trip:
    as many encryptions and decryptions, of the same sizes within a block. If the format
    or the engine changes what it encrypts, the model must follow."""
    from missile.crypto import cbc

    p = peer("missile_binary")
    calls: list[tuple[str, int]] = []
    encrypt, decrypt = cbc.CbcKey.encrypt, cbc.CbcKey.decrypt

    def counted_encrypt(self: cbc.CbcKey, iv: bytes, data: bytes | memoryview) -> bytes:
        calls.append(("encrypt", len(data)))
        return encrypt(self, iv, data)

    def counted_decrypt(self: cbc.CbcKey, iv: bytes | None, data: bytes | memoryview) -> tuple[bytes | bytearray, int]:
        calls.append(("decrypt", len(data)))
        return decrypt(self, iv, data)

    round_trip(p, bytes(range(PAYLOAD_BYTES)))  # the server has verified the session's token, as when measured
    monkeypatch.setattr(cbc.CbcKey, "encrypt", counted_encrypt)
    monkeypatch.setattr(cbc.CbcKey, "decrypt", counted_decrypt)
    round_trip(p, bytes(range(PAYLOAD_BYTES)))
    encrypted = sorted(size for kind, size in calls if kind == "encrypt")
    decrypted = sorted(size for kind, size in calls if kind == "decrypt")
    assert len(encrypted) == len(bench_peers.MSL_ENCRYPTED)
    assert len(decrypted) == len(bench_peers.MSL_DECRYPTED)
    for measured, modelled in [*zip(encrypted, sorted(bench_peers.MSL_ENCRYPTED), strict=True),
                               *zip(decrypted, sorted(bench_peers.MSL_DECRYPTED), strict=True)]:  # fmt: skip
        assert abs(measured - modelled) <= 16


def test_crypto_models_run_and_verify() -> None:
    bench_peers.msl_crypto_round_trip()()
    oscore = bench_peers.oscore_crypto_round_trip()
    assert oscore is not None
    oscore()


def test_http_bounds_split_the_cpu_per_request() -> None:
    trips = {"missile_binary": {"us_per_round_trip": 130.0}}
    http = {
        "https_echo": {"cpu_us_per_request": 170.0},
        "http_echo": {"cpu_us_per_request": 120.0},
        "missile_binary": {"cpu_us_per_request": 850.0, "req_per_s": 2000.0, "ratio_to_https_echo": 0.2},
    }
    bench_peers._http_bounds(trips, http)
    figures = http["missile_binary"]
    assert figures["engine_us_per_request"] == pytest.approx(850 - 120 - 130)
    assert figures["best_ratio_without_engine"] == pytest.approx(170 / (120 + 130))
    assert figures["cpu_ratio_to_https_echo"] == pytest.approx(170 / 850)
    rows = [row[0] for row in bench_peers.peers_rows({"round_trip": {}, "http": http}, str)]
    assert any("engines + state costing nothing" in row for row in rows)


def test_tree_cpu_counts_child_processes() -> None:
    """A server's CPU is its workers' too: a busy child shows in its parent's tree."""
    import os
    import subprocess
    import time

    before = bench_peers._tree_cpu_seconds(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.5\n"
                              "while time.process_time() < end: pass\ninput()"], stdin=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while bench_peers._tree_cpu_seconds(os.getpid()) - before < 0.4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bench_peers._tree_cpu_seconds(os.getpid()) - before >= 0.4
    finally:
        child.communicate(b"\n", timeout=30)

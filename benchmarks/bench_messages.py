"""Streaming throughput and memory of the message layer against the raw crypto ceiling.

Streams ``--total`` bytes (default 64 MiB) of application data in ``--chunk`` byte chunks
(default 64 KiB) through :class:`MessageWriter` and :class:`MessageReader` under a master
token (session crypto context): each chunk is written, its bytes fed to the reader and
dropped. The raw ceiling is AES-128-CBC encrypt + HMAC-SHA256 sign, then verify + decrypt,
with ``cryptography`` on the same chunks.

Run: ``PYTHONPATH=src python benchmarks/bench_messages.py [--json PATH] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import hmac
import io
import json
import os
import pstats
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from missile.clock import FixedClock  # noqa: E402
from missile.crypto.symmetric import SessionCryptoContext  # noqa: E402
from missile.keyfile import KeyFile  # noqa: E402
from missile.messages import MessageReader, MessageWriter, PayloadReceived  # noqa: E402
from missile.messages.builder import build_request  # noqa: E402
from missile.profiles import context_from_keyfile  # noqa: E402
from missile.tokens.factory import TokenFactory  # noqa: E402

MIB = 1024 * 1024
#: Both runs are timed in CPU time of this (single-threaded) process, so other load on a
#: shared machine does not skew the ratio; wall-clock time equals it on an idle machine.
CLOCK = time.process_time
VECTORS = ROOT / "tests" / "vectors"


def _rss_mib() -> float:
    """Peak RSS of the process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (MIB if sys.platform == "darwin" else 1024)


def _current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / MIB
    except OSError:  # pragma: no cover - non-Linux
        return _rss_mib()


def setup() -> tuple[Any, Any]:
    """A server and a PSK client sharing a session (master token issued by the server)."""
    clock = FixedClock(1735689660000)
    server = context_from_keyfile(
        KeyFile.load(VECTORS / "01_a_psk_request_encrypted.json"),
        role="server",
        clock=clock,
        token_factory=TokenFactory(),
    ).ctx
    client = context_from_keyfile(
        KeyFile.load(VECTORS / "03_c_response_asymmetric_wrapped_rsa.json"), role="client", clock=clock
    ).ctx
    token = server.token_factory.create_master_token(server, "client1", os.urandom(16), os.urandom(32))
    # The client holds the same token (as it would after key exchange) with the session keys.
    assert client.store is not None
    client.store.set_crypto_context(
        token,
        SessionCryptoContext("client1", token.sequence_number, token.encryption_key, token.signature_key),
    )
    return server, client


def run_messages(total: int, chunk: int, data: bytes, *, trace: bool = False) -> dict[str, Any]:
    """One streaming run; with ``trace`` memory is measured (tracemalloc slows the run)."""
    server, client = setup()
    request = build_request(client)
    assert request.header.master_token is not None
    writer = MessageWriter(request.header, request.payload_crypto_context, chunk_size=chunk, compression=None)
    reader = MessageReader(server)
    gc.collect()
    rss_before = _current_rss_mib()
    base_current = 0
    if trace:
        tracemalloc.start()
        base_current, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
    received = 0
    digest_in, digest_out = hashlib.sha256(), hashlib.sha256()
    view = memoryview(data)
    # Only the writer and reader calls are timed; the digests that check the payload
    # arrived intact are not part of the message layer's cost (the raw run has none).
    clock = CLOCK
    t0 = clock()
    events = reader.feed(writer.header_bytes())
    elapsed = clock() - t0
    for offset in range(0, total, chunk):
        piece = view[offset : offset + chunk]
        digest_in.update(piece)
        t0 = clock()
        got = reader.feed(writer.write(piece))
        elapsed += clock() - t0
        for event in got:
            if isinstance(event, PayloadReceived):
                received += len(event.data)
                digest_out.update(event.data)
    t0 = clock()
    got = reader.feed(writer.close()) + reader.end_of_stream()
    elapsed += clock() - t0
    for event in got:
        if isinstance(event, PayloadReceived):
            received += len(event.data)
            digest_out.update(event.data)
    peak = base_current
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rss_after = _current_rss_mib()
    assert reader.done and not events[1:]
    assert received == total and digest_in.digest() == digest_out.digest(), "payload mismatch"
    return {
        "seconds": elapsed,
        "mb_per_s": total / MIB / elapsed,
        "tracemalloc_peak_mib": (peak - base_current) / MIB,
        "rss_delta_mib": rss_after - rss_before,
    }


def run_raw(total: int, chunk: int, data: bytes) -> dict[str, Any]:
    """AES-128-CBC + PKCS#7 then HMAC-SHA256 over IV||ciphertext; verify then decrypt."""
    enc_key, mac_key = os.urandom(16), os.urandom(32)
    view = memoryview(data)
    t0 = CLOCK()
    for offset in range(0, total, chunk):
        piece = bytes(view[offset : offset + chunk])
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(piece) + padder.finalize()
        encryptor = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
        ciphertext = iv + encryptor.update(padded) + encryptor.finalize()
        mac = crypto_hmac.HMAC(mac_key, hashes.SHA256())
        mac.update(ciphertext)
        tag = mac.finalize()
        # receiver
        check = crypto_hmac.HMAC(mac_key, hashes.SHA256())
        check.update(ciphertext)
        if not hmac.compare_digest(check.finalize(), tag):
            raise AssertionError("MAC mismatch")
        decryptor = Cipher(algorithms.AES(enc_key), modes.CBC(ciphertext[:16])).decryptor()
        plain_padded = decryptor.update(ciphertext[16:]) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(plain_padded) + unpadder.finalize()
        if len(plain) != len(piece):
            raise AssertionError("length mismatch")
    elapsed = CLOCK() - t0
    return {"seconds": elapsed, "mb_per_s": total / MIB / elapsed}


def profile(total: int, chunk: int, data: bytes, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    run_messages(total, chunk, data)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=64 * MIB, help="application bytes (default 64 MiB)")
    parser.add_argument("--chunk", type=int, default=64 * 1024, help="chunk size (default 64 KiB)")
    parser.add_argument("--json", type=Path, help="write results as JSON to this path")
    parser.add_argument("--profile", action="store_true", help="cProfile the message run (top costs)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N alternating runs (default 3)")
    args = parser.parse_args(argv)

    data = os.urandom(args.total)  # incompressible, like encrypted media
    rss_start = _rss_mib()
    memory = run_messages(args.total, args.chunk, data, trace=True)
    # Message and raw runs alternate, so both see the same machine conditions; the
    # ratio is that of the best run of each.
    message_runs, raw_runs = [], []
    for _ in range(args.repeat):
        message_runs.append(run_messages(args.total, args.chunk, data))
        raw_runs.append(run_raw(args.total, args.chunk, data))
    messages = min(message_runs, key=lambda r: r["seconds"])
    raw = min(raw_runs, key=lambda r: r["seconds"])
    messages["tracemalloc_peak_mib"] = memory["tracemalloc_peak_mib"]
    messages["rss_delta_mib"] = max(memory["rss_delta_mib"], messages["rss_delta_mib"])
    ratio = messages["mb_per_s"] / raw["mb_per_s"]
    result = {
        "total_bytes": args.total,
        "chunk_bytes": args.chunk,
        "python": sys.version.split()[0],
        "messages": messages,
        "raw_crypto": raw,
        "ratio": ratio,
        "peak_rss_growth_mib": _rss_mib() - rss_start,
        "targets": {"ratio_min": 0.5, "memory_growth_max_mib": 32},
        "meets_ratio_target": ratio >= 0.5,
        "meets_memory_target": messages["tracemalloc_peak_mib"] < 32 and messages["rss_delta_mib"] < 32,
    }
    print(f"payload: {args.total / MIB:.0f} MiB in {args.chunk // 1024} KiB chunks (CPU time, best of {args.repeat})")
    print(f"messages  : {messages['mb_per_s']:8.1f} MiB/s  ({messages['seconds']:.2f} s)")
    print(f"raw crypto: {raw['mb_per_s']:8.1f} MiB/s  ({raw['seconds']:.2f} s)")
    print(f"ratio     : {ratio:.2f} (target >= 0.50)")
    print(
        f"memory    : tracemalloc peak {messages['tracemalloc_peak_mib']:.2f} MiB, "
        f"RSS delta {messages['rss_delta_mib']:.2f} MiB (target < 32 MiB)"
    )
    if args.profile:
        text = profile(min(args.total, 16 * MIB), args.chunk, data, 25)
        result["profile_top"] = text
        print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

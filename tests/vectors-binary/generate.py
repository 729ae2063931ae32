"""Generate the binary-format vectors (tests/vectors-binary/README.md).

Run from the repository root: ``.venv/bin/python tests/vectors-binary/generate.py``.
The output is checked in; tests decode it (tests/messages/test_binary_vectors.py) and
check that docs/binary-format.md's hex examples are these very bytes. IVs and key
exchange randomness differ from run to run, so regenerating rewrites the files; the
structure examples are deterministic.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))

from messages.vector_decoding import decode_vector  # noqa: E402
from missile.clock import FixedClock  # noqa: E402
from missile.context import INSECURE_SCHEMES, MslContext  # noqa: E402
from missile.crypto.algorithms import CipherSpec, SignatureAlgo  # noqa: E402
from missile.crypto.envelopes import CiphertextEnvelope, EnvelopeVersion, SignatureEnvelope  # noqa: E402
from missile.crypto.symmetric import SymmetricCryptoContext  # noqa: E402
from missile.encoding import EncoderFormat, decode, encode  # noqa: E402
from missile.entityauth.none import NoneEntityAuthData  # noqa: E402
from missile.entityauth.psk import PskEntityAuthData  # noqa: E402
from missile.entityauth.rsa import RsaEntityAuthData  # noqa: E402
from missile.errors import MslError, MslException  # noqa: E402
from missile.keyfile import KeyFile  # noqa: E402
from missile.keyx.jwk_ladder import JwkLadderRequest  # noqa: E402
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest  # noqa: E402
from missile.messages import HeaderReceived, MessageReader, MessageWriter, PayloadReceived  # noqa: E402
from missile.messages import header as header_module  # noqa: E402
from missile.messages.builder import build_response  # noqa: E402
from missile.messages.capabilities import DEFAULT_CAPABILITIES  # noqa: E402
from missile.messages.error_header import ErrorHeader  # noqa: E402
from missile.messages.header import HeaderData, MessageHeader  # noqa: E402
from missile.messages.payload import encode_chunk  # noqa: E402
from missile.profiles import context_from_keyfile  # noqa: E402
from missile.tokens import MasterToken, ServiceToken, UserIdToken  # noqa: E402
from missile.tokens.factory import TokenFactory  # noqa: E402
from missile.tokens.user import MslUser  # noqa: E402
from missile.userauth.email_password import EmailPasswordAuthData  # noqa: E402

BIN = EncoderFormat.MISSILE_CBOR
JAVA = REPO / "tests" / "vectors"


def java(stem: str) -> dict[str, Any]:
    return dict(json.loads((JAVA / f"{stem}.json").read_text()))


def plain(value: Any) -> Any:
    """A JSON form of a decoded value: bytes become ``{"$bytes": base64}``."""
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def expected_of(vector: dict[str, Any]) -> dict[str, Any]:
    out = decode_vector(vector)
    out.pop("events")
    return dict(plain(out))


# -- transcoded requests --------------------------------------------------------------------


def transcode(stem: str) -> dict[str, Any] | None:
    """A Java request vector rewritten in the binary format by its own receiver (who holds
    every key that protects it); None when the receiver cannot protect it (RSA, ECC)."""
    vector = java(stem)
    if vector.get("receiver_role") != "server" or "message_b64" not in vector:
        return None
    keys = KeyFile.from_dict(vector["keys"])
    built = context_from_keyfile(keys, allowed_insecure_schemes=INSECURE_SCHEMES)
    ctx = built.ctx
    reader = MessageReader(ctx, service_token_contexts=keys.service_token_crypto_contexts(), single_message=True)
    events = reader.feed(base64.b64decode(vector["message_b64"])) + reader.end_of_stream()
    first = events[0]
    if not isinstance(first, HeaderReceived):
        return None
    header = first.header
    try:
        again = MessageHeader.create(
            ctx,
            header.data,
            master_token=header.master_token,
            entity_auth_data=header.entity_auth_data,
            encoder_format=BIN,
        )
        parts = [again.encode()]
        for event in events:
            if isinstance(event, PayloadReceived):
                chunk = event.chunk
                parts.append(
                    encode_chunk(
                        first.payload_crypto_context,
                        chunk.sequence_number,
                        chunk.message_id,
                        chunk.data,
                        end_of_message=chunk.end_of_message,
                        compression=chunk.compression_algo,
                        encoder_format=BIN,
                    )
                )
    except MslException:
        return None
    out = {
        "name": vector["name"] + " (binary)",
        "description": f"Java vector {stem} rewritten in the binary format by its receiver.",
        "source": stem,
        "direction": vector["direction"],
        "receiver_role": vector["receiver_role"],
        "encoder_format": BIN.value,
        "keys": vector["keys"],
        "message_b64": base64.b64encode(b"".join(parts)).decode(),
    }
    out["expected"] = expected_of(out)
    return out


# -- responses and errors written by missile ---------------------------------------------------


def _server(
    keys_stem: str = "01_a_psk_request_encrypted", factory: TokenFactory | None = None
) -> tuple[MslContext, FixedClock, int]:
    keys = KeyFile.from_dict(java(keys_stem)["keys"])
    assert keys.time_ms is not None
    clock = FixedClock(keys.time_ms)
    return context_from_keyfile(keys, role="server", clock=clock, token_factory=factory).ctx, clock, keys.time_ms


class Issued(NamedTuple):
    """A client's binary PSK request with SYMMETRIC_WRAPPED key request data and user
    authentication, and a missile server's binary response issuing it tokens."""

    server: MslContext
    client: MslContext
    request: Any
    response_wire: bytes
    client_keys: dict[str, Any]
    server_keys: dict[str, Any]


def issue(binary_tokens: bool = True) -> Issued:
    """:class:`Issued`, the server's factory issuing binary tokens in binary responses
    (missile's default) or JSON ones only (``binary_tokens=False``)."""
    from missile.messages.builder import build_request

    server, _, now = _server(factory=TokenFactory(binary_tokens=binary_tokens))
    client_keys = dict(java("13_c_response_symmetric_wrapped_psk")["keys"])
    client_keys["time_ms"] = now
    client_keys["master_tokens"] = []
    client = context_from_keyfile(KeyFile.from_dict(client_keys), clock=FixedClock(now)).ctx
    request = build_request(
        client,
        use_entity_auth=True,
        renewable=True,
        key_request_data=[SymmetricWrappedRequest("PSK")],
        user_auth_data=EmailPasswordAuthData("user1@foo.com", "user1pwd"),
        encoder_format=BIN,
    )
    writer = MessageWriter(request.header, request.payload_crypto_context)
    reader = MessageReader(server)
    events = reader.feed(writer.header_bytes() + writer.close()) + reader.end_of_stream()
    assert isinstance(events[0], HeaderReceived)
    st_crypto = KeyFile.from_dict(client_keys).service_token_crypto_contexts()[""]
    token_format = BIN if binary_tokens else EncoderFormat.JSON
    token = ServiceToken.create("binary-service-token", b"service data", st_crypto, encoder_format=token_format)
    response = build_response(server, events[0].header, service_tokens=[token], capabilities=DEFAULT_CAPABILITIES)
    assert response.key_exchange is not None
    writer = MessageWriter(response.header, response.payload_crypto_context, chunk_size=40)
    wire = writer.header_bytes() + writer.write(b"a binary response in two chunks, " * 2) + writer.close()
    server_keys = {**java("01_a_psk_request_encrypted")["keys"], "time_ms": now}
    return Issued(server, client, request, wire, client_keys, server_keys)


def session_vectors() -> list[dict[str, Any]]:
    """The server's binary response of :func:`issue` read by the client (key response,
    binary-issued master token, user ID token and service token, two chunks); an error
    response; the client's next binary request under the tokens it was issued."""
    issued = issue()
    server = issued.server
    out = []
    vector = {
        "name": "missile binary response, SYMMETRIC_WRAPPED key response",
        "description": "A missile server's binary response to a binary PSK request with SYMMETRIC_WRAPPED "
        "key request data and user authentication: key response data with a new binary-issued master "
        "token, a binary-issued user ID token, an unbound binary-issued service token, two payload "
        "chunks under the new session keys.",
        "source": None,
        "direction": "response",
        "receiver_role": "client",
        "encoder_format": BIN.value,
        "keys": issued.client_keys,
        "message_b64": base64.b64encode(issued.response_wire).decode(),
    }
    vector["expected"] = expected_of(vector)
    out.append(vector)
    ead = server.get_entity_auth_data()
    assert ead is not None
    error = ErrorHeader.from_error(
        server, ead, 1234, MslError.USERIDTOKEN_REVOKED, user_message="please log in again", encoder_format=BIN
    )
    vector = {
        "name": "missile binary error response",
        "description": "An error header in the binary format (USERIDTOKEN_REVOKED, a user message), "
        "signed with the server's RSA entity authentication.",
        "source": None,
        "direction": "response",
        "receiver_role": "client",
        "encoder_format": BIN.value,
        "keys": issued.client_keys,
        "message_b64": base64.b64encode(error.encode()).decode(),
    }
    vector["expected"] = expected_of(vector)
    out.append(vector)
    out.append(next_request(issued, BIN))
    return out


def next_request(issued: Issued, fmt: EncoderFormat) -> dict[str, Any]:
    """The client's request after reading the response of ``issued``, in ``fmt``, under
    the tokens it was issued, carried as they were issued; received by the server."""
    from missile.messages.builder import build_request

    client = issued.client
    reader = MessageReader(client, key_request_data=issued.request.header.data.key_request_data)
    received = (reader.feed(issued.response_wire) + reader.end_of_stream())[0]
    assert isinstance(received, HeaderReceived) and received.key_exchange_crypto_context is not None
    data = received.header.data
    assert data.key_response_data is not None and data.user_id_token is not None
    master = data.key_response_data.master_token
    assert client.store is not None
    client.store.set_crypto_context(master, received.key_exchange_crypto_context)
    built = build_request(
        client,
        message_id=77,
        master_token=master,
        user_id_token=data.user_id_token,
        service_tokens=data.service_tokens,
        encoder_format=fmt,
    )
    writer = MessageWriter(built.header, built.payload_crypto_context)
    wire = writer.header_bytes() + writer.write(b"the next request, under the tokens it was issued") + writer.close()
    issued_in = "binary" if master.tokendata[0] == BIN.identifier else "JSON"
    written = "binary" if fmt is BIN else "JSON"
    vector = {
        "name": f"missile {written} request under {issued_in}-issued tokens",
        "description": f"A {written} request under the master token, user ID token and service token a "
        f"missile server issued in the {issued_in} format, carried as they were issued.",
        "source": None,
        "direction": "request",
        "receiver_role": "server",
        "encoder_format": fmt.value,
        "keys": issued.server_keys,
        "message_b64": base64.b64encode(wire).decode(),
    }
    vector["expected"] = expected_of(vector)
    return vector


def cross_format_vectors() -> dict[str, Any]:
    """Requests whose tokens were issued in the other format (docs/binary-format.md §7): a
    JSON request under binary-issued tokens (a client back on JSON), and a binary request
    under JSON-issued tokens (from a server issuing JSON only, ``binary_tokens=False``)."""
    return {
        "description": "Requests carrying tokens issued in the other encoder format, received by the server.",
        "vectors": [next_request(issue(True), EncoderFormat.JSON), next_request(issue(False), BIN)],
    }


# -- structures -----------------------------------------------------------------------------


def structures() -> dict[str, Any]:
    """Deterministic encodings of every structure, with what they mean (docs/binary-format.md)."""
    keys = KeyFile.from_dict(java("57_j_master_token")["keys"])
    msl = keys.msl_crypto_context()
    assert msl is not None
    items: dict[str, Any] = {}

    def add(name: str, value: Any, encoded: bytes | None = None) -> None:
        data = encoded if encoded is not None else encode(value, BIN)
        assert data == encode(decode(data), BIN), name  # deterministic
        items[name] = {"hex": data.hex(), "value": plain(decode(data).to_dict())}

    add("capabilities", DEFAULT_CAPABILITIES)
    add(
        "ciphertext_envelope_v1",
        None,
        CiphertextEnvelope.v1("client1_0", bytes(range(16)), bytes(range(32))).encode(BIN),
    )
    add("ciphertext_envelope_v1_no_iv", None, CiphertextEnvelope.v1("rsakeyid1", None, b"\x99" * 8).encode(BIN))
    add(
        "ciphertext_envelope_v2",
        None,
        CiphertextEnvelope.v2(CipherSpec.from_wire("AES/CBC/PKCS5Padding"), bytes(16), b"\x01" * 16).encode(BIN),
    )
    add(
        "signature_envelope_v2",
        None,
        SignatureEnvelope(b"\x02" * 32, EnvelopeVersion.V2, SignatureAlgo("HmacSHA256")).encode(BIN),
    )
    add("entity_auth_psk", PskEntityAuthData("client1"))
    add("entity_auth_rsa", RsaEntityAuthData("server1", "rsakeyid1"))
    add("entity_auth_none", NoneEntityAuthData("device-1"))
    add("user_auth_email_password", EmailPasswordAuthData("user1@foo.com", "user1pwd"))
    add("key_request_symmetric_wrapped", SymmetricWrappedRequest("PSK"))
    add("key_request_jwk_ladder_psk", JwkLadderRequest("PSK"))
    # Tokens issued in the binary format with fixed keys: the IVs are random, so these
    # are produced with a context whose random source is fixed.
    assert keys.token_keys is not None
    fixed = SymmetricCryptoContext(
        keys.token_keys.key_id, keys.token_keys.encryption_key, keys.token_keys.hmac_key, random=_ZeroRandom()
    )
    master = MasterToken.create(
        fixed,
        renewal_window_ms=4070908800000,
        expiration_ms=4102444800000,
        sequence_number=1,
        serial_number=42,
        identity="client1",
        encryption_key=bytes(range(16)),
        signature_key=bytes(range(32)),
        encoder_format=BIN,
    )
    add("master_token", master)
    add("master_token_tokendata", None, master.tokendata)
    add("master_token_sessiondata_plaintext", None, fixed.decrypt(decode(master.tokendata).get_bytes("sessiondata")))
    uit = UserIdToken.create(
        fixed,
        renewal_window_ms=4070908800000,
        expiration_ms=4102444800000,
        master_token=master,
        serial_number=7,
        user=MslUser("user1"),
        encoder_format=BIN,
    )
    add("user_id_token", uit)
    add("user_id_token_tokendata", None, uit.tokendata)
    service = ServiceToken.create("name", b"data", fixed, master_token=master, encrypted=False, encoder_format=BIN)
    add("service_token", service)
    add("service_token_tokendata", None, service.tokendata)
    add(
        "payload_chunk_plaintext",
        {"sequencenumber": 1, "messageid": 5, "endofmsg": True, "data": b"hello"},
    )
    # Message header data (§5.6): a renewable request under a master token; the false
    # flags (handshake, nonreplayable) are left out.
    header_data = HeaderData(message_id=5, renewable=True, capabilities=DEFAULT_CAPABILITIES)
    add(
        "header_data_plaintext",
        None,
        header_module._binary_header_data(header_data, 1735689600, peer_to_peer=False),
    )
    add("error_data_plaintext", {"timestamp": 1735689600, "messageid": 6, "errorcode": 5, "internalcode": 110000})
    return {"description": "Deterministic binary-format encodings of MSL structures.", "structures": items}


class _ZeroRandom:
    """A random source of zeros: only for the deterministic documentation examples."""

    def random_bytes(self, n: int) -> bytes:
        return bytes(n)


# -- the document's examples ------------------------------------------------------------------


def annotate(data: bytes) -> list[str]:
    """``data`` as annotated hex lines (``hex | meaning``), one CBOR head per line; long
    strings continue on lines of their own."""
    lines = [f"{data[0]:02x} | format identifier (binary format)"]
    _annotate(data, 1, 0, lines)
    width = max(len(line.split(" | ")[0]) for line in lines)
    return [f"{h.ljust(width)} | {c}" if c else h for h, _, c in (line.partition(" | ") for line in lines)]


def _annotate(data: bytes, pos: int, depth: int, lines: list[str]) -> int:
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    size = 0 if info < 24 else 1 << (info - 24)
    n = info if info < 24 else int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
    head = data[pos : pos + 1 + size].hex()
    pos += 1 + size
    pad = "  " * depth
    if major == 0:
        lines.append(f"{head} | {pad}{n}")
    elif major == 1:
        lines.append(f"{head} | {pad}{-1 - n}")
    elif major == 3:
        text = data[pos : pos + n]
        lines.append(f"{head} {text.hex()} | {pad}{json.dumps(text.decode())}")
        pos += n
    elif major == 2:
        body = data[pos : pos + n]
        first, rest = body[:16], body[16:]
        lines.append(f"{head} {first.hex()} | {pad}bytes({n})")
        for i in range(0, len(rest), 24):
            lines.append(f"{rest[i : i + 24].hex()} | ")
        pos += n
    elif major == 4:
        lines.append(f"{head} | {pad}array({n})")
        for _ in range(n):
            pos = _annotate(data, pos, depth + 1, lines)
    elif major == 5:
        lines.append(f"{head} | {pad}map({n})")
        for _ in range(2 * n):
            pos = _annotate(data, pos, depth + 1, lines)
    else:
        lines.append(f"{head} | {pad}{'true' if info == 21 else 'false'}")
    return pos


def render_doc(path: Path) -> None:
    """Rewrite the example block after each ``<!-- example: NAME -->`` marker of ``path``."""
    import re

    items = structures()["structures"]

    def block(match: re.Match[str]) -> str:
        name = match.group(1)
        body = "\n".join(annotate(bytes.fromhex(items[name]["hex"])))
        return f"<!-- example: {name} -->\n```text\n{body}\n```"

    text = path.read_text()
    path.write_text(re.sub(r"<!-- example: (\w+) -->\s*```text\n.*?```", block, text, flags=re.S))


def main() -> None:
    """Write every vector; ``--doc`` rewrites the document's examples instead, and
    ``--missile`` keeps the transcoded Java vectors (01 to 23) as they are."""
    if sys.argv[1:] == ["--doc"]:
        render_doc(REPO / "docs" / "binary-format.md")
        return
    written = 0
    index = 1
    for stem in sorted(p.stem for p in JAVA.glob("[0-9][0-9]_*.json")):
        if sys.argv[1:] == ["--missile"]:
            index += (HERE / f"{index:02d}_{stem[3:]}.json").exists()
            continue
        vector = transcode(stem)
        if vector is None:
            continue
        (HERE / f"{index:02d}_{stem[3:]}.json").write_text(json.dumps(vector, indent=1) + "\n")
        index += 1
        written += 1
    for vector in session_vectors():
        slug = vector["name"].replace("missile binary ", "").split(",")[0].replace(" ", "_")
        (HERE / f"{index:02d}_missile_{slug}.json").write_text(json.dumps(vector, indent=1) + "\n")
        index += 1
        written += 1
    (HERE / "structures.json").write_text(json.dumps(structures(), indent=1) + "\n")
    (HERE / "cross-format.json").write_text(json.dumps(cross_format_vectors(), indent=1) + "\n")
    print(f"wrote {written} message vectors and structures.json", file=sys.stderr)


if __name__ == "__main__":
    main()

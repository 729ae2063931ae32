"""Running the Java MSL reference next to missile, and reading what went over the wire.

The live interop tests need three things that are not pytest's business: starting and
stopping the two echo servers (the reference's example server through its own
``java-server.sh``, and ``missile serve``), running the two command-line clients with a
bounded time, and finding evidence of *which* key exchange happened.

That evidence comes from the messages themselves. A server authenticating with RSA
cannot encrypt, so the header of the response that carries key response data is plain
base64 JSON: its ``keyresponsedata.scheme`` names the exchange and its master token's
``serialnumber`` the session it created. The reference client prints every message it
sends and receives with ``-v true``; the library client records the raw bytes it reads.
Headers protected by a session key stay opaque and are ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: The shared folder sits beside the checkout (read-only in CI).
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
JAVA_DIR = SHARED / "reference-java"
KEYS_DIR = SHARED / "interop"
SERVER_KEYS = KEYS_DIR / "main-server-keys.json"
PSK_CLIENT_KEYS = KEYS_DIR / "main-client-psk-keys.json"
RSA_CLIENT_KEYS = KEYS_DIR / "main-client-rsa-keys.json"
BCPROV = Path(os.environ.get("BCPROV_JAR", "/usr/share/java/bcprov.jar"))

#: The missile command, run by the interpreter running the tests (the venv's in CI).
MISSILE = [sys.executable, "-m", "missile.cli"]

#: One client run (a JVM start, RSA key generation, two round trips) takes a few
#: seconds on a loaded 2-core machine; a minute means something hangs.
CLIENT_TIMEOUT_S = 60.0
#: java-server.sh itself gives the JVM 15 s to come up; uvicorn needs about one.
SERVER_START_TIMEOUT_S = 30.0
#: Time a stopped server gets to exit before it is killed.
STOP_TIMEOUT_S = 10.0


def require_java() -> None:
    """Skip when Java or BouncyCastle is missing, except in CI, where that is a failure."""
    missing = []
    if shutil.which("java") is None:
        missing.append("java (Debian openjdk-17-jre-headless)")
    if not BCPROV.is_file():
        missing.append(f"BouncyCastle at {BCPROV} (Debian libbcprov-java)")
    if not JAVA_DIR.is_dir():
        missing.append(f"the Java reference at {JAVA_DIR}")
    if not missing:
        return
    reason = "live Java interop needs " + ", ".join(missing) + "; scripts/setup.sh installs the packages"
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI must run these tests)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaps counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stop_group(pgid: int, pids: Sequence[int]) -> None:
    """SIGTERM the process group, wait for ``pids`` to go, SIGKILL what remains."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            if not any(_alive(pid) for pid in pids):
                return
            time.sleep(0.05)


@dataclass
class JavaServer:
    """The reference's example echo server, started by ``java-server.sh``."""

    url: str
    pid: int
    pgid: int
    log: Path

    def stop(self) -> None:
        _stop_group(self.pgid, [self.pid])


def start_java_server(rundir: Path) -> JavaServer:
    """Start the reference server on a free port; retry once if the port was taken meanwhile."""
    env = {**os.environ, "MSL_SERVER_THREADS": "4"}
    error = ""
    for attempt in range(2):
        run = rundir / f"run{attempt}"
        port = free_port()
        proc = subprocess.Popen(
            ["bash", str(JAVA_DIR / "java-server.sh"), str(port), str(run)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            # Its own process group: the backgrounded JVM stays in it, so teardown can
            # stop everything the script started.
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=SERVER_START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pid_file = run / "java-server.pid"
        pid = int(pid_file.read_text().strip()) if pid_file.is_file() else proc.pid
        server = JavaServer(out.decode().strip(), pid, proc.pid, run / "java-server.log")
        if proc.returncode == 0 and server.url.startswith("http://127.0.0.1:") and _listening(port):
            return server
        server.stop()
        error = err.decode(errors="replace")[-2000:]
    raise RuntimeError(f"the Java reference server did not start: {error}")


@dataclass
class MissileServer:
    """``missile serve`` in its own process group."""

    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        _stop_group(self.proc.pid, [self.proc.pid])
        self.proc.wait(timeout=STOP_TIMEOUT_S)


def start_missile_server(state: Path, log: Path, *extra: str) -> MissileServer:
    """Start ``missile serve`` with the example deployment's server keys on a free port."""
    error = ""
    for _ in range(2):
        port = free_port()
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [*MISSILE, "serve", "--keys", str(SERVER_KEYS), "--port", str(port), "--state", str(state), *extra],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
                start_new_session=True,
            )
        server = MissileServer(f"http://127.0.0.1:{port}/mslcli-server", proc)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            if _listening(port):
                return server
            time.sleep(0.05)
        server.stop()
        error = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"missile serve did not start: {error}")


@dataclass(frozen=True)
class Run:
    """The outcome of one client process."""

    returncode: int
    stdout: bytes
    stderr: str


def run_process(args: Sequence[str], cwd: Path | None = None) -> Run:
    """Run a client in its own process group, killing the whole group if it overruns."""
    proc = subprocess.Popen(
        list(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=CLIENT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _stop_group(proc.pid, [proc.pid])
        out, err = proc.communicate()
        return Run(-1, out, f"timed out after {CLIENT_TIMEOUT_S} s\n" + err.decode(errors="replace"))
    return Run(proc.returncode, out, err.decode(errors="replace"))


# -- what went over the wire ------------------------------------------------------------


@dataclass
class Wire:
    """What the plain-text headers of a conversation show."""

    key_responses: list[str] = field(default_factory=list)
    """The scheme of each key response data seen, in order."""
    issued_serials: list[int] = field(default_factory=list)
    """The serial number of the master token in each key response."""
    used_serials: list[int] = field(default_factory=list)
    """The serial number of the master token each header travelled under."""
    entity_auth: list[str] = field(default_factory=list)
    """The entity authentication scheme of each header that had one."""
    user_id_token_in_key_response_header: bool = False


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every top-level JSON object in ``text`` (MSL messages are concatenated objects)."""
    decoder = json.JSONDecoder()
    pos = text.find("{")
    while pos != -1:
        try:
            obj, end = decoder.raw_decode(text, pos)
        except ValueError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(obj, dict):
            yield obj
        pos = text.find("{", end)


def _b64_json(value: object) -> dict[str, Any] | None:
    if not isinstance(value, str):
        return None
    try:
        decoded = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None
    return decoded if isinstance(decoded, dict) else None


def _serial(token: object) -> int | None:
    data = _b64_json(token.get("tokendata")) if isinstance(token, dict) else None
    serial = data.get("serialnumber") if data else None
    return serial if isinstance(serial, int) else None


def read_wire(text: str) -> Wire:
    """Evidence from concatenated MSL messages in their JSON encoding."""
    wire = Wire()
    for obj in _json_objects(text):
        if "headerdata" not in obj:
            continue
        auth = obj.get("entityauthdata")
        if isinstance(auth, dict) and isinstance(auth.get("scheme"), str):
            wire.entity_auth.append(auth["scheme"])
        used = _serial(obj.get("mastertoken"))
        if used is not None:
            wire.used_serials.append(used)
        data = _b64_json(obj["headerdata"])
        response = data.get("keyresponsedata") if data else None
        if isinstance(response, dict):
            wire.key_responses.append(str(response.get("scheme")))
            issued = _serial(response.get("mastertoken"))
            if issued is not None:
                wire.issued_serials.append(issued)
            wire.user_id_token_in_key_response_header = "useridtoken" in (data or {})
    return wire


# -- what the reference client says about itself ------------------------------------------

_OFFERED = re.compile(r"Generated \w+Exchange\$RequestData\[\w+\]\{(\w+), (\w+)\}")
_AUTH_DATA = re.compile(r"Generated \w+AuthenticationData\[\w+\]\{(\w+)\}")
_ADDED_MT = re.compile(r"Adding MasterToken\{ser_num ([0-9a-f]+),")
_ADDED_UIT = re.compile(r"Adding UserIdToken\{user opaque, ser_num ([0-9a-f]+),.*for userId (\S+)")
_SENT = re.compile(r"Messages Sent: (\d+)")


@dataclass(frozen=True)
class JavaLog:
    """The reference client's own account of a run (its INFO lines)."""

    offered: set[tuple[str, str]]
    """(scheme, mechanism) of each key request it generated; mechanism "null" for DH."""
    auth_data: set[str]
    """Schemes of the entity and user authentication data it generated."""
    added_master_tokens: list[int]
    added_user_id_tokens: list[tuple[int, str]]
    messages_sent: int


def read_java_log(text: str) -> JavaLog:
    sent = _SENT.search(text)
    return JavaLog(
        offered=set(_OFFERED.findall(text)),
        auth_data=set(_AUTH_DATA.findall(text)),
        added_master_tokens=[int(s, 16) for s in _ADDED_MT.findall(text)],
        added_user_id_tokens=[(int(s, 16), user) for s, user in _ADDED_UIT.findall(text)],
        messages_sent=int(sent.group(1)) if sent else 0,
    )


_VERBOSE = re.compile(
    r"messages=(?P<messages>\d+) keyx=(?P<keyx>\S+) "
    r"mastertoken=serial:(?P<serial>\d+|-)/seq:\S+ useridtoken=(?P<uit>yes|no)"
)


@dataclass(frozen=True)
class SendSummary:
    """The line ``missile send -v`` prints about the exchange."""

    messages: int
    keyx: str
    serial: int | None
    user_id_token: bool


def read_send_summary(stderr: str) -> SendSummary:
    match = _VERBOSE.search(stderr)
    assert match is not None, f"no exchange summary in: {stderr[-1000:]}"
    serial = match["serial"]
    return SendSummary(
        int(match["messages"]), match["keyx"], None if serial == "-" else int(serial), match["uit"] == "yes"
    )


# -- the reference's peer-to-peer entity ---------------------------------------------------

JAVA_PEER = JAVA_DIR / "java-peer.sh"
P2P_KEYS = JAVA_DIR / "p2p-keys.py"
JAVA_PEER_ID = "javapeer"
MISSILE_PEER_ID = "missilepeer"


def write_p2p_keys(directory: Path) -> tuple[Path, Path]:
    """A fresh pair of peer key files from the reference's ``p2p-keys.py``: (Java's, missile's)."""
    done = subprocess.run(
        [sys.executable, str(P2P_KEYS), str(directory), JAVA_PEER_ID, MISSILE_PEER_ID],
        capture_output=True,
        timeout=CLIENT_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"p2p-keys.py failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return directory / f"{JAVA_PEER_ID}.json", directory / f"{MISSILE_PEER_ID}.json"


_PEER_LINE = re.compile(r"^(SENT|RECV) (\{.*\})$", re.MULTILINE)
_EXCHANGE = re.compile(r"^EXCHANGE (\d+) (PASS|FAIL)", re.MULTILINE)


@dataclass(frozen=True)
class PeerLog:
    """What ``java-peer.sh`` printed: its header summaries, in order, each with the
    number of the exchange it belongs to, and the verdict of each exchange."""

    headers: list[tuple[int, str, dict[str, Any]]]
    """(exchange, "SENT" or "RECV", summary)."""
    verdicts: dict[int, str]
    coalesced: bool
    """The key-exchange answer was held to go out with the next request."""

    def in_exchange(self, number: int) -> list[tuple[str, dict[str, Any]]]:
        return [(way, summary) for n, way, summary in self.headers if n == number]


def read_peer_log(text: str) -> PeerLog:
    """Parse ``java-peer.sh`` output; a header belongs to the exchange whose verdict follows it."""
    verdicts: dict[int, str] = {}
    headers: list[tuple[int, str, dict[str, Any]]] = []
    marks = [(m.start(), int(m.group(1)), m.group(2)) for m in _EXCHANGE.finditer(text)]
    for _, number, verdict in marks:
        verdicts.setdefault(number, verdict)
    for match in _PEER_LINE.finditer(text):
        after = [n for pos, n, _ in marks if pos > match.start()]
        number = after[0] if after else (max(verdicts) + 1 if verdicts else 1)
        headers.append((number, match.group(1), json.loads(match.group(2))))
    return PeerLog(headers, verdicts, "holding the key-exchange answer" in text)

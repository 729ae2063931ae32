"""``missile inspect``: decode a captured message or token and, with keys, verify it.

Two views of the same bytes. Without keys (:func:`unverified_message`,
:func:`unverified_token`) everything that travels in the clear is shown: entity auth
data, a master token's plaintext fields, and the header data, key request and response
data, user auth data and payload chunks whenever the sender did not encrypt them; what
is encrypted is shown as its size. Nothing in that view is checked, so it is marked
``verified: false`` and must not be trusted: anyone can write any of it. With keys
(:func:`inspect_message`, :func:`inspect_token`) the message is read exactly as its
receiver would read it, signatures checked and everything decrypted.

A user's password never appears in either view (its length does): a capture is shared
with colleagues far more often than the password should be.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from missile.context import INSECURE_SCHEMES
from missile.crypto.context import CryptoContext
from missile.encoding import MslObject, ObjectStreamDecoder, decode, to_json_value
from missile.errors import MslError, MslException
from missile.keyfile import KeyFile
from missile.messages import ErrorReceived, HeaderReceived, MessageReader, PayloadReceived
from missile.messages.header import MessageHeader
from missile.profiles import context_from_keyfile
from missile.tokens import MasterToken, ServiceToken, UserIdToken

__all__ = ["inspect_message", "inspect_token", "read_capture", "unverified_message", "unverified_token"]

#: What the unverified view says about itself, in JSON and at the top of the text output.
UNVERIFIED_NOTE = "NOT VERIFIED: no keys given; signatures were not checked and encrypted parts are not shown"

# Fields whose value is a base64 MSL object that may be readable without keys.
_NESTED = ("headerdata", "errordata", "tokendata", "payload")
# Fields that hold secrets a capture must not reveal (their length is shown instead).
_HIDDEN = ("password",)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def read_capture(path: str | Path) -> tuple[bytes, dict[str, Any] | None]:
    """The captured bytes of ``path``: raw message bytes, or a vector file's
    ``message_b64``/``token_b64`` (then the vector's ``keys`` is returned too); ``-``
    reads stdin."""
    raw = sys.stdin.buffer.read() if str(path) == "-" else Path(path).read_bytes()
    if raw[:1] == b"{":
        try:
            doc = json.loads(raw)
        except ValueError:
            return raw, None
        if isinstance(doc, dict) and ("message_b64" in doc or "token_b64" in doc):
            data = base64.b64decode(doc.get("message_b64") or doc["token_b64"])
            keys = doc.get("keys") if isinstance(doc.get("keys"), dict) else None
            return data, keys
    return raw, None


def _inspector(keys: KeyFile) -> CryptoContext | None:
    return keys.msl_crypto_context()


def _master_token(token: MasterToken | None, keys: KeyFile) -> dict[str, Any] | None:
    if token is None:
        return None
    identity = token.identity
    msl = _inspector(keys)
    if identity is None and msl is not None:
        identity = MasterToken.parse(MslObject(_outer(token)), msl).identity
    return {"identity": identity, "serialnumber": token.serial_number, "sequencenumber": token.sequence_number}


def _outer(token: MasterToken | UserIdToken) -> dict[str, str]:
    return {"tokendata": _b64(token.tokendata) or "", "signature": _b64(token.signature) or ""}


def _user_id_token(token: UserIdToken | None, master_token: MasterToken | None, keys: KeyFile) -> dict[str, Any] | None:
    if token is None:
        return None
    user = token.user
    msl = _inspector(keys)
    if user is None and msl is not None and master_token is not None:
        user = UserIdToken.parse(MslObject(_outer(token)), msl, master_token).user
    return {
        "serialnumber": token.serial_number,
        "mtserialnumber": token.mt_serial_number,
        "user": user.identity if user is not None else None,
    }


def _service_token(token: ServiceToken) -> dict[str, Any]:
    return {"name": token.name, "data_b64": _b64(token.data)}


def inspect_message(message: bytes, keys: KeyFile) -> dict[str, Any]:
    """Decode, verify and decrypt a message as the key file's entity would receive it."""
    built = context_from_keyfile(keys, allowed_insecure_schemes=INSECURE_SCHEMES)
    reader = MessageReader(
        built.ctx,
        service_token_contexts=keys.service_token_crypto_contexts(),
        key_request_data=built.key_request_data,
        single_message=True,
    )
    events = [*reader.feed(message), *reader.end_of_stream()]
    first = events[0]
    if isinstance(first, ErrorReceived):
        eh = first.error_header
        return {
            "verified": True,
            "kind": "error",
            "errorheader": {
                "messageid": eh.message_id,
                "errorcode": eh.raw_error_code,
                "internalcode": eh.internal_code,
                "errormsg": eh.error_message,
                "usermsg": eh.user_message,
            },
        }
    assert isinstance(first, HeaderReceived)
    header = first.header
    data = header.data
    krd = data.key_response_data
    verifier = krd.master_token if krd is not None else header.master_token
    payload = b"".join(e.data for e in events if isinstance(e, PayloadReceived))
    return {
        "verified": True,
        "kind": "message",
        "header": {
            "messageid": data.message_id,
            "nonreplayableid": data.non_replayable_id,
            "renewable": data.renewable,
            "handshake": data.handshake,
            "sender": _sender(header),
            "entityauthdata": _scheme_data(header.entity_auth_data) if header.entity_auth_data else None,
            "user": header.user.identity if header.user is not None else None,
            "mastertoken": _master_token(header.master_token, keys),
            "useridtoken": _user_id_token(data.user_id_token, verifier, keys),
            "userauthdata": _scheme_data(data.user_auth_data) if data.user_auth_data is not None else None,
            "keyrequestdata": [_scheme_data(k) for k in data.key_request_data],
            "keyresponsedata": (
                {
                    "scheme": krd.scheme,
                    "mastertoken": _master_token(krd.master_token, keys),
                    "keydata": _plain(to_json_value(dict(krd.keydata()))),
                }
                if krd
                else None
            ),
            "servicetokens": sorted((_service_token(t) for t in data.service_tokens), key=lambda t: t["name"]),
        },
        "payload_b64": _b64(payload),
    }


def _sender(header: MessageHeader) -> str | None:
    """Who sent the message: the header's ``sender`` field (written when a master token
    protects the header, whose identity is then the *client's* even in a server's
    response), else the entity auth identity, else the master token's identity."""
    if header.data.sender is not None:
        return header.data.sender
    if header.entity_auth_data is not None:
        return header.entity_auth_data.identity
    return header.identity


def inspect_token(token_bytes: bytes, token_type: str, keys: KeyFile) -> dict[str, Any]:
    """Decode, verify and decrypt a standalone token."""
    msl = keys.msl_crypto_context()
    obj = decode(token_bytes)
    built = context_from_keyfile(keys, allowed_insecure_schemes=INSECURE_SCHEMES)
    clock = built.ctx.clock
    bound_mt = None
    if keys.bound_master_token is not None and msl is not None:
        bound_mt = MasterToken.parse(decode(keys.bound_master_token), msl, clock=clock)
    if token_type == "mastertoken":
        if msl is None:
            raise SystemExit("inspecting a master token needs msl_token_keys")
        mt = MasterToken.parse(obj, msl, clock=clock)
        out: dict[str, Any] = {
            "identity": mt.identity,
            "serialnumber": mt.serial_number,
            "sequencenumber": mt.sequence_number,
            "renewalwindow": mt.renewal_window,
            "expiration": mt.expiration,
            "verified": mt.verified,
            "encryptionkey_b64": _b64(mt.encryption_key),
            "hmackey_b64": _b64(mt.signature_key),
        }
        return {"mastertoken": out}
    if token_type == "useridtoken":
        if msl is None:
            raise SystemExit("inspecting a user ID token needs msl_token_keys")
        uit = UserIdToken.parse(obj, msl, bound_mt, clock=clock)
        return {
            "useridtoken": {
                "serialnumber": uit.serial_number,
                "mtserialnumber": uit.mt_serial_number,
                "user": uit.user.identity if uit.user else None,
                "verified": uit.verified,
            }
        }
    bound_uit = None
    if keys.bound_user_id_token is not None and msl is not None:
        bound_uit = UserIdToken.parse(decode(keys.bound_user_id_token), msl, bound_mt, clock=clock)
    st = ServiceToken.parse(obj, keys.service_token_crypto_contexts(), bound_mt, bound_uit)
    return {
        "servicetoken": {
            "name": st.name,
            "mtserialnumber": st.mt_serial_number,
            "uitserialnumber": st.uit_serial_number,
            "encrypted": st.encrypted,
            "compressionalgo": st.compression_algo.value if st.compression_algo else None,
            "verified": st.verified,
            "deleted": st.deleted,
            "data_b64": _b64(st.data),
        }
    }


def _plain(value: Any) -> Any:
    """A JSON value for display: MSL objects as dicts, readable nested objects decoded,
    encrypted envelopes reduced to their size, secrets hidden."""
    if isinstance(value, MslObject):
        value = value.to_dict()
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _HIDDEN and isinstance(item, str):
                out[key] = f"(hidden, {len(item)} characters)"
            elif key in _NESTED or key == "sessiondata" or key == "servicedata":
                out[key] = _nested(item, readable=key in _NESTED)
            else:
                out[key] = _plain(item)
        return out
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return _b64(bytes(value))
    return value


def _raw_bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return None
    return None


def _nested(value: Any, *, readable: bool) -> Any:
    """A nested base64 MSL object: decoded when it is plaintext, else "encrypted (N bytes)"."""
    raw = _raw_bytes(value)
    if raw is None:
        return _plain(value)
    if readable:
        try:
            obj = decode(raw)
        except MslException:
            return f"encrypted or unreadable ({len(raw)} bytes)"
        if "ciphertext" in obj:  # an encryption envelope
            return f"encrypted ({len(raw)} bytes)"
        return _plain(obj)
    return f"encrypted ({len(raw)} bytes)"


def _objects(message: bytes) -> list[MslObject]:
    decoder = ObjectStreamDecoder()
    decoder.feed(message)
    objects: list[MslObject] = []
    while (item := decoder.next_object()) is not None:
        objects.append(item[1])
    if decoder.has_pending_data():
        raise MslException(MslError.MSL_PARSE_ERROR, "trailing bytes after the last MSL object")
    if not objects:
        raise MslException(MslError.MSL_PARSE_ERROR, "no MSL object")
    return objects


def unverified_message(message: bytes) -> dict[str, Any]:
    """What a captured message shows to anyone, without keys: nothing is verified."""
    first, *chunks = _objects(message)
    head = _plain(first)
    kind = "error" if "errordata" in head else "message"
    return {
        "verified": False,
        "note": UNVERIFIED_NOTE,
        "kind": kind,
        "header": head,
        "payloads": [_plain(chunk) for chunk in chunks],
    }


def unverified_token(token_bytes: bytes) -> dict[str, Any]:
    """What a standalone token shows to anyone, without keys: nothing is verified."""
    return {"verified": False, "note": UNVERIFIED_NOTE, "token": _plain(decode(token_bytes))}


def _scheme_data(item: Any) -> dict[str, Any]:
    """Key request/response or user auth data as its wire object, secrets hidden."""
    shown: dict[str, Any] = _plain(to_json_value(item.to_msl()))
    return shown

"""``missile inspect``: decode a captured message or token and, with keys, verify it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from missile.context import INSECURE_SCHEMES
from missile.crypto.context import CryptoContext
from missile.encoding import MslObject, decode
from missile.keyfile import KeyFile
from missile.messages import ErrorReceived, HeaderReceived, MessageReader, PayloadReceived
from missile.profiles import context_from_keyfile
from missile.tokens import MasterToken, ServiceToken, UserIdToken

__all__ = ["inspect_message", "inspect_token", "read_capture"]


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def read_capture(path: str | Path) -> tuple[bytes, dict[str, Any] | None]:
    """The captured bytes of ``path``: raw message bytes, or a vector file's
    ``message_b64``/``token_b64`` (then the vector's ``keys`` is returned too)."""
    raw = Path(path).read_bytes()
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
        key_requests=built.key_requests,
        single_message=True,
    )
    events = [*reader.feed(message), *reader.end_of_stream()]
    first = events[0]
    if isinstance(first, ErrorReceived):
        eh = first.error_header
        return {
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
        "kind": "message",
        "header": {
            "messageid": data.message_id,
            "nonreplayableid": data.non_replayable_id,
            "renewable": data.renewable,
            "handshake": data.handshake,
            "sender": header.identity,
            "user": header.user.identity if header.user is not None else None,
            "mastertoken": _master_token(header.master_token, keys),
            "useridtoken": _user_id_token(data.user_id_token, verifier, keys),
            "keyresponsedata": (
                {"scheme": krd.scheme, "mastertoken": _master_token(krd.master_token, keys)} if krd else None
            ),
            "servicetokens": sorted((_service_token(t) for t in data.service_tokens), key=lambda t: t["name"]),
        },
        "payload_b64": _b64(payload),
    }


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

"""Decode a shared vector's message with missile and describe it in the vectors' terms."""

from __future__ import annotations

import base64
import json
from typing import Any

from missile.context import INSECURE_SCHEMES
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MslObject, ObjectStreamDecoder, decode
from missile.keyfile import KeyFile
from missile.messages import ErrorReceived, HeaderReceived, MessageEnd, MessageReader, PayloadReceived
from missile.profiles import context_from_keyfile
from missile.tokens import MasterToken, ServiceToken, UserIdToken


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def count_objects(message: bytes) -> int:
    decoder = ObjectStreamDecoder()
    decoder.feed(message)
    n = 0
    while decoder.next_raw() is not None:
        n += 1
    return n


def crypto_description(ctx: Any) -> dict[str, Any] | None:
    if ctx is None:
        return None
    if isinstance(ctx, SymmetricCryptoContext):
        return {
            "keyid": ctx.key_id,
            "encryption_key_b64": b64(ctx.encryption_key),
            "hmac_key_b64": b64(ctx.signature_key),
        }
    return {"class": type(ctx).__name__}


def master_token_description(token: MasterToken | None, keys: KeyFile) -> dict[str, Any] | None:
    if token is None:
        return None
    out: dict[str, Any] = {
        "serialnumber": token.serial_number,
        "sequencenumber": token.sequence_number,
        "renewalwindow": token.renewal_window,
        "expiration": token.expiration,
        "decrypted": token.decrypted,
        "verified": token.verified,
        "tokendata_plaintext": decode(token.tokendata).to_dict(),
    }
    inspected = token
    if not token.decrypted and keys.token_keys is not None:
        msl = keys.msl_crypto_context()
        assert msl is not None
        inspected = MasterToken.parse(MslObject(json.loads(json.dumps(_token_obj(token)))), msl)
    out["identity"] = inspected.identity
    out["issuerdata"] = inspected.issuer_data
    out["encryptionkey_b64"] = b64(inspected.encryption_key)
    out["hmackey_b64"] = b64(inspected.signature_key)
    return out


def _token_obj(token: MasterToken | UserIdToken) -> dict[str, str]:
    return {"tokendata": b64(token.tokendata) or "", "signature": b64(token.signature) or ""}


def user_id_token_description(
    token: UserIdToken | None, master_token: MasterToken | None, keys: KeyFile
) -> dict[str, Any] | None:
    if token is None:
        return None
    out: dict[str, Any] = {
        "serialnumber": token.serial_number,
        "mtserialnumber": token.mt_serial_number,
        "renewalwindow": token.renewal_window,
        "expiration": token.expiration,
        "decrypted": token.decrypted,
        "verified": token.verified,
        "tokendata_plaintext": decode(token.tokendata).to_dict(),
    }
    inspected = token
    if not token.decrypted and keys.token_keys is not None and master_token is not None:
        msl = keys.msl_crypto_context()
        assert msl is not None
        inspected = UserIdToken.parse(MslObject(_token_obj(token)), msl, master_token)
    out["user"] = inspected.user.identity if inspected.user is not None else None
    out["issuerdata"] = inspected.issuer_data
    return out


def service_token_description(token: ServiceToken) -> dict[str, Any]:
    return {
        "name": token.name,
        "mtserialnumber": token.mt_serial_number,
        "uitserialnumber": token.uit_serial_number,
        "encrypted": token.encrypted,
        "compressionalgo": token.compression_algo.value if token.compression_algo else None,
        "decrypted": token.decrypted,
        "verified": token.verified,
        "deleted": token.deleted,
        "data_b64": b64(token.data),
        "tokendata_plaintext": decode(token.tokendata).to_dict(),
    }


def decode_vector(vector: dict[str, Any], *, split: int | None = None) -> dict[str, Any]:
    """Decode ``message_b64`` with the vector's keys and clock; ``split`` feeds it in pieces."""
    keys = KeyFile.from_dict(vector["keys"])
    built = context_from_keyfile(keys, allowed_insecure_schemes=INSECURE_SCHEMES)
    ctx = built.ctx
    message = base64.b64decode(vector["message_b64"])
    reader = MessageReader(
        ctx,
        service_token_contexts=keys.service_token_crypto_contexts(),
        key_request_data=built.key_request_data,
        single_message=True,
    )
    events = []
    if split is None:
        events.extend(reader.feed(message))
    else:
        for i in range(0, len(message), split):
            events.extend(reader.feed(message[i : i + split]))
    events.extend(reader.end_of_stream())
    out: dict[str, Any] = {"num_wire_objects": count_objects(message), "events": events}
    first = events[0]
    if isinstance(first, ErrorReceived):
        eh = first.error_header
        out["kind"] = "error"
        out["errorheader"] = {
            "messageid": eh.message_id,
            "errorcode": eh.raw_error_code,
            "errorcode_name": eh.error_code.name,
            "internalcode": eh.internal_code,
            "errormsg": eh.error_message,
            "usermsg": eh.user_message,
            "timestamp": eh.timestamp,
            "entityauthdata": {
                "scheme": eh.entity_auth_data.scheme,
                "identity": eh.entity_auth_data.identity,
                "authdata": dict(eh.entity_auth_data.authdata()),
            },
        }
        return out
    assert isinstance(first, HeaderReceived)
    header = first.header
    data = header.data
    out["kind"] = "message"
    ead = header.entity_auth_data
    verifier = data.key_response_data.master_token if data.key_response_data is not None else header.master_token
    out["header"] = {
        "messageid": data.message_id,
        "nonreplayableid": data.non_replayable_id,
        "renewable": data.renewable,
        "handshake": data.handshake,
        "timestamp": data.timestamp,
        "capabilities": data.capabilities.to_msl() if data.capabilities else None,
        "encrypting": header.encrypting,
        "entityauthdata": (
            {"scheme": ead.scheme, "identity": ead.identity, "authdata": dict(ead.authdata())} if ead else None
        ),
        "mastertoken": master_token_description(header.master_token, keys),
        "useridtoken": user_id_token_description(data.user_id_token, verifier, keys),
        "userauthdata": (
            json.loads(json.dumps(_plain(data.user_auth_data.to_msl()))) if data.user_auth_data else None
        ),
        "user": header.user.identity if header.user is not None else None,
        "keyrequestdata": sorted(
            (_plain(r.to_msl()) for r in data.key_request_data), key=lambda r: json.dumps(r, sort_keys=True)
        ),
        "keyresponsedata": (
            {
                "scheme": data.key_response_data.scheme,
                "keydata": _plain(dict(data.key_response_data.keydata())),
                "mastertoken": master_token_description(data.key_response_data.master_token, keys),
            }
            if data.key_response_data
            else None
        ),
        "servicetokens": sorted((service_token_description(t) for t in data.service_tokens), key=lambda t: t["name"]),
        "header_crypto_context": crypto_description(header.crypto_context),
        "headerdata_plaintext": decode(header.crypto_context.decrypt(header.headerdata)).to_dict(),
    }
    out["payload_crypto_context"] = crypto_description(first.payload_crypto_context)
    out["key_exchange_crypto_context"] = crypto_description(first.key_exchange_crypto_context)
    chunks = [e.chunk for e in events if isinstance(e, PayloadReceived)]
    out["payload_chunks"] = [
        {
            "sequencenumber": c.sequence_number,
            "messageid": c.message_id,
            "endofmsg": c.end_of_message,
            "compressionalgo": c.compression_algo.value if c.compression_algo else None,
            "data_b64": b64(c.data),
        }
        for c in chunks
    ]
    out["payload_b64"] = b64(b"".join(c.data for c in chunks))
    out["is_handshake"] = reader.is_handshake
    out["ended"] = isinstance(events[-1], MessageEnd)
    return out


def _plain(value: Any) -> Any:
    from missile.encoding import to_json_value

    return to_json_value(value)

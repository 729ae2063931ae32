"""``missile keygen``: generate a matching server and client key file."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from missile.crypto.derivation import derive_wrapping_key

# RFC 3526 group 14 (2048-bit MODP), generator 2: a well-known safe group.
MODP_2048_P = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF"
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _rsa_pair(key_pair_id: str, bits: int = 2048) -> tuple[dict[str, str], dict[str, str]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    private = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (
        {"keypairid": key_pair_id, "public_b64": _b64(public), "private_b64": _b64(private)},
        {"keypairid": key_pair_id, "public_b64": _b64(public)},
    )


def _ec_pair(key_pair_id: str) -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    private = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {"keypairid": key_pair_id, "public_b64": _b64(public), "private_b64": _b64(private)}


def generate(server_identity: str, client_identity: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A server key file and a client key file that trust each other."""
    enc, hmac_key = os.urandom(16), os.urandom(32)
    psk = {
        "identity": client_identity,
        "encryption_b64": _b64(enc),
        "hmac_b64": _b64(hmac_key),
        "wrap_b64": _b64(derive_wrapping_key(enc, hmac_key)),
    }
    server_rsa_private, server_rsa_public = _rsa_pair(f"{server_identity}-rsa")
    # A safe-prime group: 256-bit private exponents are standard (RFC 3526 §8).
    dh = [{"id": "modp2048", "p_hex": MODP_2048_P.lower(), "g_hex": "2", "private_bits": 256}]
    service_keys = [
        {"name": "", "keyid": f"{server_identity}-st", "encryption_b64": _b64(os.urandom(16)),
         "hmac_b64": _b64(os.urandom(32))}
    ]
    server = {
        "role": "server",
        "identity": server_identity,
        "entity_auth": {"scheme": "RSA", "identity": server_identity, "keypairid": server_rsa_private["keypairid"]},
        "msl_token_keys": {
            "keyid": server_identity,
            "encryption_b64": _b64(os.urandom(16)),
            "hmac_b64": _b64(os.urandom(32)),
            "wrap_b64": _b64(os.urandom(16)),
        },
        "psk": [psk],
        "rsa": [server_rsa_private],
        "ecc": [_ec_pair(f"{server_identity}-ec")],
        "users": [{"email": "user@example.com", "password": _b64(os.urandom(12)), "user": "user@example.com"}],
        "dh_parameters": dh,
        "service_token_keys": service_keys,
    }
    client = {
        "role": "client",
        "identity": client_identity,
        "entity_auth": {"scheme": "PSK", "identity": client_identity},
        "psk": [psk],
        "rsa": [server_rsa_public],
        "dh_parameters": dh,
        "key_request_data": [{"scheme": "JWK_LADDER", "mechanism": "PSK"}],
        "master_tokens": [],
        "wrap_keys": [],
        "service_token_keys": service_keys,
    }
    return server, client


def write_private(path: Path, content: dict[str, Any]) -> None:
    """Write a key file readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(content, fh, indent=1)
        fh.write("\n")

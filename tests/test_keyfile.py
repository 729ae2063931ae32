"""KeyFile: reading the shared vectors' key files and the objects derived from them."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

import vectorlib
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import decode
from missile.errors import MslEncodingException, MslError, MslException
from missile.keyfile import KeyFile
from missile.tokens import MasterToken, ServiceToken

SERVER_VECTOR = "01_a_psk_request_encrypted"
CLIENT_VECTOR = "21_c_response_jwe_ladder_wrap"


def vector_path(stem: str) -> Path:
    return vectorlib.VECTOR_DIR / f"{stem}.json"


def keys(stem: str) -> dict[str, Any]:
    data: dict[str, Any] = vectorlib.load(stem)["keys"]
    return data


def b64(text: str) -> bytes:
    return base64.b64decode(text)


# -- loading ------------------------------------------------------------------------------------


def test_load_whole_vector_file() -> None:
    kf = KeyFile.load(vector_path(SERVER_VECTOR))
    assert kf.role == "server" and kf.identity == "server1"
    assert kf.raw == keys(SERVER_VECTOR)


def test_load_bare_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(keys(SERVER_VECTOR)), encoding="utf-8")
    assert KeyFile.load(path) == KeyFile.load(vector_path(SERVER_VECTOR))
    assert KeyFile.load(str(path)).identity == "server1"


@pytest.mark.parametrize("stem", vectorlib.stems())
def test_every_vector_key_file_loads(stem: str) -> None:
    kf = KeyFile.load(vector_path(stem))
    expected = keys(stem)
    assert kf.role == expected["role"]
    assert kf.identity == expected["identity"]
    assert kf.time_ms == expected["time_ms"]
    assert len(kf.psk) == len(expected.get("psk") or [])
    assert len(kf.rsa) == len(expected.get("rsa") or [])
    assert len(kf.master_tokens) == len(expected.get("master_tokens") or [])


def test_server_key_file_fields() -> None:
    raw = keys(SERVER_VECTOR)
    kf = KeyFile.from_dict(raw)
    assert kf.time_ms == raw["time_ms"]
    assert kf.entity_auth == raw["entity_auth"]
    tk = kf.token_keys
    assert tk is not None
    assert tk.key_id == raw["msl_token_keys"]["keyid"]
    assert tk.encryption_key == b64(raw["msl_token_keys"]["encryption_b64"])
    assert tk.hmac_key == b64(raw["msl_token_keys"]["hmac_b64"])
    assert tk.wrap_key == b64(raw["msl_token_keys"]["wrap_b64"])
    assert [u.email for u in kf.users] == ["user1@foo.com", "user2@foo.com"]
    assert kf.users[0].password == "user1pwd" and kf.users[0].user == "user1@foo.com"
    dh = kf.dh_parameters[0]
    assert dh.parameters_id == raw["dh_parameters"][0]["id"]
    assert dh.p == int(raw["dh_parameters"][0]["p_hex"], 16) and dh.g == 2
    assert kf.token_factory == raw["token_factory"]
    assert kf.bound_master_token is None and kf.bound_user_id_token is None
    assert kf.key_request_data == [] and kf.master_tokens == [] and kf.wrap_keys == []


def test_client_key_file_fields() -> None:
    raw = keys(CLIENT_VECTOR)
    kf = KeyFile.from_dict(raw)
    assert kf.role == "client"
    assert kf.key_request_data == raw["key_request_data"]
    assert kf.wrap_keys == raw["wrap_keys"]
    held = kf.master_tokens[0]
    entry = raw["master_tokens"][0]
    assert held.identity == entry["identity"]
    assert held.mastertoken == b64(entry["mastertoken_b64"])
    assert held.encryption_key == b64(entry["encryption_b64"])
    assert held.hmac_key == b64(entry["hmac_b64"])
    # The held token parses; the vector's token keys open it.
    msl = kf.msl_crypto_context()
    assert msl is not None
    token = MasterToken.parse(decode(held.mastertoken), msl)
    assert token.decrypted and token.identity == held.identity
    assert token.encryption_key == held.encryption_key and token.signature_key == held.hmac_key


def test_psk_for_and_rsa_for() -> None:
    raw = keys(SERVER_VECTOR)
    kf = KeyFile.from_dict(raw)
    psk = kf.psk_for("client1")
    assert psk is not None
    assert psk.encryption_key == b64(raw["psk"][0]["encryption_b64"])
    assert psk.hmac_key == b64(raw["psk"][0]["hmac_b64"])
    assert psk.wrap_key == b64(raw["psk"][0]["wrap_b64"])
    assert kf.psk_for("nobody") is None
    rsa = kf.rsa_for("rsakeyid1")
    assert rsa is not None and rsa.private_der is not None
    assert rsa.public_der == b64(raw["rsa"][0]["public_b64"])
    public_only = kf.rsa_for("rsaclientkey1")
    assert public_only is not None and public_only.private_der is None
    assert kf.rsa_for("missing") is None


def test_msl_crypto_context() -> None:
    kf = KeyFile.load(vector_path(SERVER_VECTOR))
    msl = kf.msl_crypto_context()
    assert isinstance(msl, SymmetricCryptoContext)
    assert kf.token_keys is not None
    assert msl.key_id == kf.token_keys.key_id
    assert msl.encryption_key == kf.token_keys.encryption_key
    assert msl.signature_key == kf.token_keys.hmac_key
    assert msl.wrap_key == kf.token_keys.wrap_key
    assert msl.decrypt(msl.encrypt(b"x")) == b"x"


def test_msl_crypto_context_opens_token_vector() -> None:
    vector = vectorlib.load("57_j_master_token")
    kf = KeyFile.from_dict(vector["keys"])
    msl = kf.msl_crypto_context()
    assert msl is not None
    token = MasterToken.parse(decode(vectorlib.b64(vector["token_b64"])), msl)
    assert token.decrypted


def test_no_token_keys_means_no_context() -> None:
    raw = keys(SERVER_VECTOR)
    del raw["msl_token_keys"]
    kf = KeyFile.from_dict(raw)
    assert kf.token_keys is None and kf.msl_crypto_context() is None


def test_token_key_id_defaults_to_identity() -> None:
    raw = keys(SERVER_VECTOR)
    del raw["msl_token_keys"]["keyid"]
    del raw["msl_token_keys"]["wrap_b64"]
    kf = KeyFile.from_dict(raw)
    assert kf.token_keys is not None
    assert kf.token_keys.key_id == "server1" and kf.token_keys.wrap_key is None


def test_service_token_crypto_contexts() -> None:
    vector = vectorlib.load("61_j_service_token_unbound_plain")
    kf = KeyFile.from_dict(vector["keys"])
    contexts = kf.service_token_crypto_contexts()
    assert set(contexts) == {""}
    default = contexts[""]
    assert default.key_id == "st_default1"
    assert default.encryption_key == bytes(range(16)) and default.signature_key == bytes(range(32))
    token = ServiceToken.parse(decode(vectorlib.b64(vector["token_b64"])), contexts)
    assert token.verified


def test_service_token_keys_by_name() -> None:
    raw = keys(SERVER_VECTOR)
    raw["service_token_keys"].append(
        {"name": "com.example.x", "keyid": "x1", "encryption_b64": "AAAAAAAAAAAAAAAAAAAAAA==", "hmac_b64": "AAAA"}
    )
    contexts = KeyFile.from_dict(raw).service_token_crypto_contexts()
    assert set(contexts) == {"", "com.example.x"}
    assert contexts["com.example.x"].key_id == "x1"


def test_key_request_data_object_becomes_list() -> None:
    raw = keys(CLIENT_VECTOR)
    raw["key_request_data"] = raw["key_request_data"][0]
    assert KeyFile.from_dict(raw).key_request_data == [raw["key_request_data"]]


def test_identity_from_entity_auth() -> None:
    kf = KeyFile.from_dict({"entity_auth": {"scheme": "PSK", "identity": "client9"}})
    assert kf.identity == "client9" and kf.role == "client"
    assert KeyFile.from_dict({}).identity == ""


def test_bound_tokens() -> None:
    vector = vectorlib.load("60_j_service_token_uit_bound")
    kf = KeyFile.from_dict(vector["keys"])
    assert kf.bound_master_token == b64(vector["keys"]["bound_mastertoken_b64"])
    assert kf.bound_user_id_token == b64(vector["keys"]["bound_useridtoken_b64"])


# -- malformed key files -----------------------------------------------------------------------


def mutated(path: str, value: Any) -> dict[str, Any]:
    """The server key file with one value replaced (dotted path; list indices as digits)."""
    raw = copy.deepcopy(keys(SERVER_VECTOR))
    parts = path.split(".")
    target: Any = raw
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = parts[-1]
    if value is _DELETE:
        del target[int(last) if isinstance(target, list) else last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return raw


_DELETE: Any = object()


@pytest.mark.parametrize("doc", [[], "keys", 5, None, {"identity": 5}, {"identity": ["x"]}])
def test_not_an_object(doc: Any) -> None:
    with pytest.raises(MslEncodingException) as exc:
        KeyFile.from_dict(doc)
    assert exc.value.error is MslError.MSL_PARSE_ERROR


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("msl_token_keys.encryption_b64", _DELETE),
        ("msl_token_keys.hmac_b64", 5),
        ("msl_token_keys.encryption_b64", "not base64!"),
        ("msl_token_keys.wrap_b64", None),
        ("psk.0.encryption_b64", _DELETE),
        ("psk.0.hmac_b64", "%%%"),
        ("rsa.0.public_b64", _DELETE),
        ("service_token_keys.0.hmac_b64", _DELETE),
        ("bound_mastertoken_b64", 3),
    ],
)
def test_missing_or_bad_binary_values(path: str, value: Any) -> None:
    with pytest.raises(MslEncodingException) as exc:
        KeyFile.from_dict(mutated(path, value))
    assert exc.value.error is MslError.MSL_PARSE_ERROR


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("psk.0.identity", _DELETE),
        ("rsa.0.keypairid", _DELETE),
        ("users.0.email", _DELETE),
        ("users.0.password", _DELETE),
        ("dh_parameters.0.p_hex", "not hex"),
        ("dh_parameters.0.id", _DELETE),
        ("psk", {"identity": "client1"}),
        ("psk.0", "client1"),
        ("rsa", 5),
    ],
)
def test_malformed_entries_are_parse_errors(path: str, value: Any) -> None:
    with pytest.raises(MslException) as exc:
        KeyFile.from_dict(mutated(path, value))
    assert exc.value.error is MslError.MSL_PARSE_ERROR


def test_load_non_json_file_is_parse_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(MslException) as exc:
        KeyFile.load(path)
    assert exc.value.error is MslError.MSL_PARSE_ERROR


def test_load_json_array_is_parse_error(tmp_path: Path) -> None:
    path = tmp_path / "array.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(MslEncodingException) as exc:
        KeyFile.load(path)
    assert exc.value.error is MslError.MSL_PARSE_ERROR


def test_bad_key_length_fails_when_context_is_built() -> None:
    kf = KeyFile.from_dict(mutated("msl_token_keys.encryption_b64", "AAAA"))
    with pytest.raises(MslException) as exc:
        kf.msl_crypto_context()
    assert exc.value.error is MslError.INVALID_ENCRYPTION_KEY

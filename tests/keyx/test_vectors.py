"""Key exchange wire vectors 02-24 from the Java reference.

Request vectors: the key request data inside the (decrypted) header parses to exactly
the expected content; a responder answers it and a requester holding the vector's
private parts recovers the keys of the issued master token. Response vectors: the key
response data parses and the requester's keys from ``key_request_data_from_keyfile``
recover exactly the expected session keys.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import vectorlib
from missile.clock import FixedClock
from missile.context import INSECURE_SCHEMES, MslContext
from missile.crypto import ClientMslCryptoContext, SessionCryptoContext, SymmetricCryptoContext
from missile.encoding import MslObject, decode, encode, to_json_value
from missile.errors import MslCryptoException, MslError
from missile.keyfile import KeyFile
from missile.keyx import (
    KeyRequestData,
    LadderResponse,
    key_exchange_from_keyfile,
    key_request_data_from_keyfile,
    parse_key_request_data,
    parse_key_response_data,
    wrap_repository_from_keyfile,
)
from missile.keyx.repository import InMemoryWrapCryptoContextRepository
from missile.tokens.factory import TokenFactory
from missile.tokens.master import MasterToken

from . import StubEntityAuth

pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")

REQUESTS = [s for s in vectorlib.stems(2, 24) if int(s[:2]) % 2 == 0]
RESPONSES = [s for s in vectorlib.stems(3, 23) if int(s[:2]) % 2 == 1]


def _header(vector: dict[str, Any]) -> dict[str, Any]:
    text = vectorlib.b64(vector["message_b64"]).decode("utf-8")
    obj, _ = json.JSONDecoder().raw_decode(text)
    assert isinstance(obj, dict)
    return obj


def _server(keys: KeyFile) -> MslContext:
    msl = keys.msl_crypto_context()
    assert msl is not None and keys.time_ms is not None
    return MslContext(
        msl_crypto=msl,
        entity_auth_data=StubEntityAuth(keys.identity),
        key_exchange_factories=key_exchange_from_keyfile(keys),
        token_factory=TokenFactory(),
        clock=FixedClock(keys.time_ms),
        allowed_insecure_schemes=INSECURE_SCHEMES,
    )


def _client(keys: KeyFile, repository: InMemoryWrapCryptoContextRepository | None = None) -> MslContext:
    assert keys.time_ms is not None
    return MslContext(
        msl_crypto=ClientMslCryptoContext(),
        entity_auth_data=StubEntityAuth(keys.identity),
        key_exchange_factories=key_exchange_from_keyfile(keys),
        wrap_repository=repository if repository is not None else InMemoryWrapCryptoContextRepository(),
        clock=FixedClock(keys.time_ms),
    )


def _request_header(vector: dict[str, Any], keys: KeyFile) -> tuple[MslObject, MasterToken | None]:
    """Decrypt a request header: PSK entity auth, or the session keys of its master token."""
    header = _header(vector)
    envelope = vectorlib.b64(header["headerdata"])
    master_token = None
    if "mastertoken" in header:
        msl = keys.msl_crypto_context()
        assert msl is not None and keys.time_ms is not None
        master_token = MasterToken.parse(MslObject(header["mastertoken"]), msl, clock=FixedClock(keys.time_ms))
        assert master_token.encryption_key is not None and master_token.signature_key is not None
        crypto = SymmetricCryptoContext("mt", master_token.encryption_key, master_token.signature_key)
    else:
        psk = keys.psk[0]
        crypto = SymmetricCryptoContext(psk.identity, psk.encryption_key, psk.hmac_key)
    assert crypto.verify(envelope, vectorlib.b64(header["signature"]))
    return decode(crypto.decrypt(envelope)), master_token


@pytest.mark.parametrize("stem", REQUESTS)
def test_request_vector_parses(stem: str) -> None:
    vector = vectorlib.load(stem)
    keys = KeyFile.from_dict(vector["keys"])
    server = _server(keys)
    headerdata, _ = _request_header(vector, keys)
    expected = vector["expected"]["header"]["keyrequestdata"]
    parsed = [parse_key_request_data(o, server) for o in headerdata.get_array("keyrequestdata").objects()]
    assert [to_json_value(r.to_msl()) for r in parsed] == expected
    # The key file form of the generator's inputs describes the same requests.
    own = key_request_data_from_keyfile(KeyFile.from_dict({"identity": "x", "key_request_data": _inputs(vector)}))
    assert own == parsed


def _inputs(vector: dict[str, Any]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = vector["inputs"]["key_request_data"]
    return entries


@pytest.mark.parametrize("stem", REQUESTS)
def test_request_vector_answered(stem: str) -> None:
    """A responder answers the vector's request; the requester (private parts from the
    generator's inputs) recovers the keys of the issued master token."""
    vector = vectorlib.load(stem)
    keys = KeyFile.from_dict(vector["keys"])
    server = _server(keys)
    headerdata, master_token = _request_header(vector, keys)
    (received,) = [parse_key_request_data(o, server) for o in headerdata.get_array("keyrequestdata").objects()]
    factory = server.key_exchange_factory(received.scheme)
    assert factory is not None
    client_keys = KeyFile.from_dict(
        {
            "identity": "client1",
            "time_ms": keys.time_ms,
            "psk": vector["keys"]["psk"],
            "key_request_data": _inputs(vector),
        }
    )
    (request,) = key_request_data_from_keyfile(client_keys)
    client = _client(client_keys)
    if stem.startswith("24_"):
        # SYMMETRIC_WRAPPED SESSION: a session context cannot wrap (keyx.md §3).
        with pytest.raises(MslCryptoException) as info:
            factory.generate_response(server, received, master_token=master_token)
        assert info.value.error is MslError.WRAP_NOT_SUPPORTED
        return
    if master_token is not None:
        # Renewal by ladder WRAP: the wrapdata of vectors 17/19 opens with the server's keys.
        assert isinstance(request.keydata()["wrapdata"], bytes)
        assert server.msl_crypto.unwrap(request.keydata()["wrapdata"])
        result = factory.generate_response(server, received, master_token=master_token)
        assert result.response.master_token.serial_number == master_token.serial_number
        assert result.response.master_token.sequence_number == master_token.sequence_number + 1
        # The requester holds the previous wrapping key W from the earlier response.
        previous = vectorlib.load(_previous_response(stem))
        client_keys.wrap_keys.append(
            {
                "scheme": received.scheme,
                "wrapdata_b64": previous["inputs"]["wrapdata_b64"],
                "wrapkey_b64": previous["inputs"]["wrap_key_b64"],
            }
        )
        assert client.wrap_repository is not None
        wrap_repository_from_keyfile(client_keys, client.wrap_repository)
    else:
        result = factory.generate_response(server, received, entity_auth_data=StubEntityAuth("client1"))
    response = parse_key_response_data(decode(encode(result.response.to_msl())), client)
    session = factory.crypto_context(client, request, response, master_token)
    issued = MasterToken.parse(decode(encode(response.master_token.to_msl())), server.msl_crypto)
    assert isinstance(session, SessionCryptoContext)
    assert session.encryption_key == issued.encryption_key
    assert session.signature_key == issued.signature_key
    assert session.key_id == f"client1_{issued.sequence_number}"


def _previous_response(stem: str) -> str:
    return {"20": "17_c_response_jwe_ladder_psk", "22": "19_c_response_jwk_ladder_psk"}[stem[:2]]


def _response_header(vector: dict[str, Any], keys: KeyFile) -> tuple[MslObject, MasterToken | None]:
    """Open a response header: RSA entity auth (plaintext JSON) or the held master token's keys."""
    header = _header(vector)
    data = vectorlib.b64(header["headerdata"])
    if "mastertoken" not in header:
        return decode(data), None
    held = keys.master_tokens[0]
    assert decode(held.mastertoken).to_dict() == header["mastertoken"]
    crypto = SymmetricCryptoContext("held", held.encryption_key, held.hmac_key)
    assert crypto.verify(data, vectorlib.b64(header["signature"]))
    master_token = MasterToken.parse(MslObject(header["mastertoken"]), ClientMslCryptoContext())
    return decode(crypto.decrypt(data)), master_token


@pytest.mark.parametrize("stem", RESPONSES)
def test_response_vector(stem: str) -> None:
    vector = vectorlib.load(stem)
    keys = KeyFile.from_dict(vector["keys"])
    repository = InMemoryWrapCryptoContextRepository()
    wrap_repository_from_keyfile(keys, repository)
    client = _client(keys, repository)
    headerdata, header_master_token = _response_header(vector, keys)
    expected = vector["expected"]
    response = parse_key_response_data(headerdata.get_object("keyresponsedata"), client)
    assert response.scheme == expected["header"]["keyresponsedata"]["scheme"]
    assert to_json_value(response.keydata()) == expected["header"]["keyresponsedata"]["keydata"]
    assert not response.master_token.verified

    factory = client.key_exchange_factory(response.scheme)
    assert factory is not None
    requests: list[KeyRequestData] = key_request_data_from_keyfile(keys)
    (request,) = [r for r in requests if r.scheme == response.scheme]
    old_wrapdata = request.keydata().get("wrapdata")
    session = factory.crypto_context(client, request, response, header_master_token)

    kx = expected["key_exchange_crypto_context"]
    assert isinstance(session, SessionCryptoContext)
    assert session.key_id == kx["keyid"]
    assert session.encryption_key == vectorlib.b64(kx["encryption_key_b64"])
    assert session.signature_key == vectorlib.b64(kx["hmac_key_b64"])
    # Inspection with the server's keys: the same keys are inside the new master token.
    msl = keys.msl_crypto_context()
    assert msl is not None
    issued = MasterToken.parse(decode(encode(response.master_token.to_msl())), msl)
    assert issued.encryption_key == session.encryption_key
    assert issued.signature_key == session.signature_key

    if isinstance(response, LadderResponse):
        # keyx.md §5 step 4: the new wrapping key is stored, the old one forgotten.
        assert response.wrapdata in repository
        assert response.wrapdata == vectorlib.b64(vector["inputs"]["wrapdata_b64"])
        if old_wrapdata is not None:
            assert old_wrapdata not in repository
        assert len(repository) == 1

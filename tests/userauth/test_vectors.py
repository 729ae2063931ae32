"""EMAIL_PASSWORD user authentication inside the Java vectors 25 (PSK) and 27 (master token)."""

from __future__ import annotations

import json
from typing import Any

import vectorlib
from missile.clock import FixedClock
from missile.context import MslContext
from missile.crypto.null import ClientMslCryptoContext
from missile.encoding import MslObject, decode
from missile.entityauth import entity_auth_from_keyfile, parse_entity_auth_data
from missile.keyfile import KeyFile
from missile.tokens import MasterToken
from missile.tokens.user import MslUser
from missile.userauth import EmailPasswordAuthData, parse_user_auth_data, user_auth_from_keyfile


def setup(stem: str) -> tuple[dict[str, Any], dict[str, Any], MslContext]:
    vector = vectorlib.load(stem)
    keys = KeyFile.from_dict(vector["keys"])
    _, entity_factories = entity_auth_from_keyfile(keys)
    ctx = MslContext(
        msl_crypto=keys.msl_crypto_context() or ClientMslCryptoContext(),
        entity_auth_factories=entity_factories,
        user_auth_factories=user_auth_from_keyfile(keys),
        clock=FixedClock(keys.time_ms or 0),
    )
    header, _ = json.JSONDecoder().raw_decode(vectorlib.b64(vector["message_b64"]).decode("utf-8"))
    return vector, header, ctx


def authenticate(ctx: MslContext, identity: str, headerdata: MslObject) -> MslUser:
    data = parse_user_auth_data(headerdata.get_object("userauthdata"), ctx, None)
    assert isinstance(data, EmailPasswordAuthData)
    return ctx.user_auth_factories[data.scheme].authenticate(ctx, identity, data, None)


def test_vector_25_psk_userauth() -> None:
    vector, header, ctx = setup("25_e_psk_userauth_request")
    entity = parse_entity_auth_data(MslObject(header["entityauthdata"]), ctx)
    context = ctx.entity_auth_factories[entity.scheme].crypto_context(ctx, entity)
    ciphertext = vectorlib.b64(header["headerdata"])
    assert context.verify(ciphertext, vectorlib.b64(header["signature"]))
    headerdata = decode(context.decrypt(ciphertext))
    user = authenticate(ctx, entity.identity, headerdata)
    assert user == MslUser(vector["expected"]["header"]["user"])


def test_vector_27_master_token_userauth() -> None:
    vector, header, ctx = setup("27_e_mt_userauth_request")
    master_token = MasterToken.parse(MslObject(header["mastertoken"]), ctx.msl_crypto, clock=ctx.clock)
    assert master_token.identity is not None
    context = ctx.master_token_crypto_context(master_token)
    ciphertext = vectorlib.b64(header["headerdata"])
    assert context.verify(ciphertext, vectorlib.b64(header["signature"]))
    user = authenticate(ctx, master_token.identity, decode(context.decrypt(ciphertext)))
    assert user == MslUser(vector["expected"]["header"]["user"])

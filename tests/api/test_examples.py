"""examples/: the FastAPI notes service and its blocking client, end to end over real
HTTP (uvicorn on a loopback port)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from api.helpers import serve, write_keys

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import notes_client  # noqa: E402
import notes_service  # noqa: E402

import missile  # noqa: E402

USERS = {"alice@example.com": "alice-pw", "bob@example.com": "bob-pw"}


def test_notes_service_answers_per_user_over_http(tmp_path: Path) -> None:
    server_keys, client_keys = write_keys(tmp_path)
    app = notes_service.create_app(str(server_keys), str(tmp_path / "notes.db"), USERS)
    with serve(app) as url:
        base = f"{url}/msl"
        assert notes_client.run(base, str(client_keys), "alice@example.com", "alice-pw", "milk") == ["milk"]
        assert notes_client.run(base, str(client_keys), "bob@example.com", "bob-pw", "eggs") == ["eggs"]
        state = str(tmp_path / "client.db")
        assert notes_client.run(base, str(client_keys), "alice@example.com", "alice-pw", "tea", state) == [
            "milk",
            "tea",
        ]
        with missile.Client(base, keys=client_keys) as client:
            who = client.request("/whoami").payload
            assert who == b"entity client1, user nobody"
            # A wrong password: the server refuses the user (USERDATA_REAUTH, not recoverable
            # without other credentials), and the client reports it.
            with pytest.raises(missile.MslErrorResponse) as info:
                client.request("/notes", b"x", user=missile.EmailPassword("alice@example.com", "wrong"))
            assert info.value.response_code is missile.ResponseCode.USERDATA_REAUTH
            # No user: the notes route rejects the request.
            with pytest.raises(missile.MslErrorResponse) as info:
                client.request("/notes", b"x")
            assert info.value.error is missile.MslError.USER_REJECTED_BY_APP


def test_notes_service_other_routes_stay_fastapi(tmp_path: Path) -> None:
    import httpx

    server_keys, _ = write_keys(tmp_path)
    app = notes_service.create_app(str(server_keys), str(tmp_path / "notes.db"), USERS)
    with serve(app) as url:
        assert httpx.get(f"{url}/health").json() == {"status": "ok", "msl": "server1"}


def test_parse_users() -> None:
    assert notes_service.parse_users("a@x=p=1, b@x=q,junk") == {"a@x": "p=1", "b@x": "q"}

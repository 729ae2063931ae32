"""A blocking client for ``notes_service.py``: who am I, then add and list notes.

    python notes_client.py http://127.0.0.1:8080/msl keys/client.json alice@example.com secret "buy milk"
"""

from __future__ import annotations

import sys

import missile


def run(base_url: str, keys: str, email: str, password: str, note: str, state: str | None = None) -> list[str]:
    """Say who we are, add ``note`` for the user, and return the user's notes."""
    user = missile.EmailPassword(email, password)
    with missile.Client(base_url, keys=keys, state=state) as client:
        print(client.request("/whoami", user=user).payload.decode())
        return client.request("/notes", note.encode(), user=user).payload.decode().splitlines()


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    for line in run(*sys.argv[1:6]):
        print("-", line)

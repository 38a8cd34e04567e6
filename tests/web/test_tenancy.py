"""One user can neither see nor change another's conversations (always 404, the same as
a missing id, so ids do not leak), a revoked key is refused on its next request, and a
shared link is read-only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from chorusline.store import Role
from tests.web.conftest import Web, api


@dataclass
class Victim:
    key: str
    user_id: str
    conversation_id: str
    message_id: str


@pytest.fixture
def bob(web: Web) -> Victim:
    """A second user with a conversation written straight into the store (no generation
    needed to own data)."""
    store = web.chat.store
    user = store.create_user("bob")
    key = store.create_api_key(user.id, tier="big").plaintext
    conv = store.create_conversation(user.id, title="Bob's secret plans")
    message = store.append_message(user.id, conv.id, role=Role.USER, content="the secret")
    return Victim(key, user.id, conv.id, message.id)


async def test_another_users_conversation_is_a_404_for_everything(web: Web, bob: Victim
                                                                  ) -> None:
    cid, mid = bob.conversation_id, bob.message_id
    attempts = [
        ("GET", f"/conversations/{cid}", None),
        ("GET", f"/conversations/{cid}?tree=true", None),
        ("GET", f"/conversations/{cid}/messages", None),
        ("PATCH", f"/conversations/{cid}", {"title": "mine now"}),
        ("PATCH", f"/conversations/{cid}", {"archived": True}),
        ("DELETE", f"/conversations/{cid}", None),
        ("POST", f"/conversations/{cid}/messages", {"content": "hello", "max_tokens": 4}),
        ("POST", f"/conversations/{cid}/messages",
         {"regenerate_message_id": mid, "max_tokens": 4}),
        ("POST", f"/conversations/{cid}/branch", {"message_id": mid}),
        ("POST", f"/conversations/{cid}/active_branch", {"message_id": mid}),
        ("PUT", f"/conversations/{cid}/messages/{mid}/feedback", {"rating": "up"}),
        ("DELETE", f"/conversations/{cid}/messages/{mid}/feedback", None),
        ("GET", f"/conversations/{cid}/feedback", None),
        ("POST", f"/conversations/{cid}/messages/{mid}/stop", None),
        ("POST", f"/conversations/{cid}/share", None),
        ("GET", f"/conversations/{cid}/share", None),
        ("DELETE", f"/conversations/{cid}/share", None),
        ("GET", f"/conversations/{cid}/export", None),
    ]
    missing = str(uuid.uuid4())
    for method, path, body in attempts:
        theirs = await api(web, method, path, json=body)
        assert theirs.status_code == 404, (method, path, theirs.text)
        # Byte for byte what a missing id gets, once the id itself is swapped.
        nobody = await api(web, method, path.replace(cid, missing), json=body)
        assert theirs.text.replace(cid, missing) == nobody.text, (method, path)

    own = (await api(web, "POST", "/conversations", json={})).json()["id"]
    grafted = await api(web, "POST", f"/conversations/{own}/messages",
                         json={"content": "hi", "edit_message_id": mid, "max_tokens": 4})
    assert grafted.status_code == 404, grafted.text
    grafted = await api(web, "POST", f"/conversations/{own}/branch", json={"message_id": mid})
    assert grafted.status_code == 404, grafted.text
    assert (await api(web, "GET", "/conversations/search?q=secret")).json()["data"] == []
    listed = (await api(web, "GET", "/conversations?archived=all")).json()["data"]
    assert [c["id"] for c in listed] == [own]

    # Bob's conversation is exactly as it was, and he still sees it.
    still = await api(web, "GET", f"/conversations/{cid}?tree=true", key=bob.key)
    assert still.status_code == 200
    body = still.json()
    assert (body["title"], body["archived"], body["shared"]) == (
        "Bob's secret plans", False, False)
    assert [m["id"] for m in body["messages"]] == [mid]


async def test_a_revoked_key_is_refused_at_once(web: Web, bob: Victim) -> None:
    issued = web.chat.store.create_api_key(bob.user_id, tier="big")
    ok = await api(web, "GET", f"/conversations/{bob.conversation_id}", key=issued.plaintext)
    assert ok.status_code == 200
    web.chat.store.revoke_api_key(bob.user_id, issued.key.id)
    for method, path in [("GET", f"/conversations/{bob.conversation_id}"),
                         ("GET", "/conversations"),
                         ("POST", f"/conversations/{bob.conversation_id}/messages")]:
        refused = await api(web, method, path, key=issued.plaintext,
                            json={"content": "hi", "max_tokens": 4})
        assert refused.status_code == 401, (method, path, refused.text)
        assert refused.json()["error"]["code"] == "invalid_api_key"
    assert (await api(web, "GET", "/conversations", auth=False)).status_code == 401
    # The user's other key is untouched.
    assert (await api(web, "GET", "/conversations", key=bob.key)).status_code == 200


async def test_a_shared_link_is_read_only(web: Web, bob: Victim) -> None:
    share = await api(web, "POST", f"/conversations/{bob.conversation_id}/share", key=bob.key)
    token = share.json()["token"]
    before = await api(web, "GET", f"/shared/{token}", auth=False)
    assert before.status_code == 200
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for auth in (False, True):
            for suffix in ("", "/messages"):
                tried = await api(web, method, f"/shared/{token}{suffix}", auth=auth,
                                  key=bob.key, json={"content": "x", "title": "defaced"})
                assert tried.status_code in (404, 405), (method, auth, suffix, tried.text)
                assert "error" in tried.json()
    after = await api(web, "GET", f"/shared/{token}", auth=False)
    assert after.json() == before.json()
    owner = (await api(web, "GET", f"/conversations/{bob.conversation_id}",
                       key=bob.key)).json()
    assert owner["title"] == "Bob's secret plans" and len(owner["messages"]) == 1

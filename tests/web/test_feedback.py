"""Feedback routes on a real server: rate, re-rate, list, export, remove; only the
owner, only assistant messages, and bad bodies change nothing."""

from __future__ import annotations

from tests.web.conftest import Web, api


async def conversation_with_reply(web: Web) -> tuple[str, str, str]:
    cid = (await api(web, "POST", "/conversations", json={"title": "t"})).json()["id"]
    turn = await api(web, "POST", f"/conversations/{cid}/messages",
                     json={"content": "Hi", "max_tokens": 2})
    assert turn.status_code == 200, turn.text
    user, reply = (await api(web, "GET", f"/conversations/{cid}/messages")).json()["data"]
    return cid, user["id"], reply["id"]


async def test_a_reply_is_rated_re_rated_listed_exported_and_unrated(web: Web) -> None:
    cid, _, reply = await conversation_with_reply(web)
    route = f"/conversations/{cid}/messages/{reply}/feedback"
    up = await api(web, "PUT", route, json={"rating": "up"})
    assert up.status_code == 200, up.text
    assert up.json()["rating"] == "up" and up.json()["comment"] is None
    assert up.json()["object"] == "message.feedback"
    down = await api(web, "PUT", route, json={"rating": "down", "comment": "too short"})
    assert (down.json()["rating"], down.json()["comment"]) == ("down", "too short")
    listed = (await api(web, "GET", f"/conversations/{cid}/feedback")).json()
    assert [(f["message_id"], f["rating"]) for f in listed["data"]] == [(reply, "down")]
    exported = (await api(web, "GET", f"/conversations/{cid}/export")).json()
    assert [(f["message_id"], f["comment"]) for f in exported["feedback"]] == \
        [(reply, "too short")]
    removed = await api(web, "DELETE", route)
    assert removed.json() == {"object": "message.feedback.deleted", "message_id": reply,
                              "deleted": True}
    assert (await api(web, "DELETE", route)).json()["deleted"] is False
    assert (await api(web, "GET", f"/conversations/{cid}/feedback")).json()["data"] == []


async def test_only_the_owner_rates_only_replies_with_good_bodies(web: Web) -> None:
    cid, user_message, reply = await conversation_with_reply(web)
    route = f"/conversations/{cid}/messages/{reply}/feedback"
    other = web.chat.store.create_user("mallory")
    key = web.chat.store.create_api_key(other.id, tier="big").plaintext
    for method, path, body in (("PUT", route, {"rating": "up"}), ("DELETE", route, None),
                               ("GET", f"/conversations/{cid}/feedback", None)):
        assert (await api(web, method, path, json=body, key=key)).status_code == 404
        assert (await api(web, method, path, json=body, auth=False)).status_code == 401
    for body, param in (({"rating": "meh"}, "rating"), ({}, "rating"),
                        ({"rating": "up", "stars": 5}, "stars"),
                        ({"rating": "up", "comment": 3}, "comment"),
                        ({"rating": "up", "comment": "x" * 10_001}, "comment")):
        response = await api(web, "PUT", route, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == param
    on_user = await api(web, "PUT", f"/conversations/{cid}/messages/{user_message}/feedback",
                        json={"rating": "up"})
    assert on_user.status_code == 400 and on_user.json()["error"]["param"] == "message_id"
    assert (await api(web, "GET", f"/conversations/{cid}/feedback")).json()["data"] == []

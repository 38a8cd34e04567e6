"""The conversation API over real HTTP with the real model: a whole round trip, branches,
cursor pagination, and malformed input (always an OpenAI-format 4xx, never a 500)."""

from __future__ import annotations

import json
from typing import Any

import httpx2

from tests.web.conftest import Web, api

ASK = {"max_tokens": 8, "temperature": 0}


def sse_payloads(raw: str) -> list[dict[str, Any]]:
    assert raw.endswith("data: [DONE]\n\n"), raw[-200:]
    events = raw.split("\n\n")[:-2]
    return [json.loads(e.removeprefix("data: ")) for e in events]


def error_of(response: httpx2.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def test_round_trip(web: Web) -> None:
    created = await api(web, "POST", "/conversations",
                        json={"title": "Fruit talk", "system_prompt": "Be brief."})
    assert created.status_code == 201, created.text
    conv = created.json()
    cid = conv["id"]
    assert (conv["object"], conv["title"], conv["archived"], conv["shared"]) == (
        "conversation", "Fruit talk", False, False)

    first = await api(web, "POST", f"/conversations/{cid}/messages",
                      json={"content": "Name a red fruit.", **ASK},
                      headers={"Idempotency-Key": "turn-one"})
    assert first.status_code == 200, first.text
    reply = first.json()
    assert (reply["role"], reply["status"], reply["conversation_id"]) == (
        "assistant", "complete", cid)
    assert reply["finish_reason"] in ("stop", "length") and reply["content"]
    retried = await api(web, "POST", f"/conversations/{cid}/messages",
                        json={"content": "Name a red fruit.", **ASK},
                        headers={"Idempotency-Key": "turn-one"})
    assert retried.status_code == 200 and retried.json()["id"] == reply["id"]
    assert retried.json()["replayed"] is True

    streamed = await api(web, "POST", f"/conversations/{cid}/messages",
                         json={"content": "And a yellow one?", "stream": True, **ASK})
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(streamed.text)
    text = "".join(p["choices"][0]["delta"].get("content", "") for p in payloads)
    assert payloads[-1]["choices"][0]["finish_reason"] in ("stop", "length")

    shown = (await api(web, "GET", f"/conversations/{cid}")).json()
    messages = shown["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2
    assert all(m["status"] == "complete" for m in messages)
    assert messages[1]["id"] == reply["id"] and messages[3]["content"] == text
    assert messages[2]["content"] == "And a yellow one?"
    listed = (await api(web, "GET", f"/conversations/{cid}/messages")).json()
    assert [m["id"] for m in listed["data"]] == [m["id"] for m in messages]

    renamed = await api(web, "PATCH", f"/conversations/{cid}", json={"title": "Fruit quiz"})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Fruit quiz"
    archived = await api(web, "PATCH", f"/conversations/{cid}", json={"archived": True})
    assert archived.json()["archived"] is True
    ids = {f: [c["id"] for c in (await api(web, "GET", f"/conversations?archived={f}")
                                 ).json()["data"]] for f in ("false", "true", "all")}
    assert ids == {"false": [], "true": [cid], "all": [cid]}

    found = (await api(web, "GET", "/conversations/search?q=YELLOW")).json()["data"]
    assert [h["conversation"]["id"] for h in found] == [cid]
    assert messages[2]["id"] in found[0]["message_ids"]  # the reply may say it too
    by_title = (await api(web, "GET", "/conversations/search?q=quiz")).json()["data"]
    assert by_title[0]["title_matched"] is True

    exported = await api(web, "GET", f"/conversations/{cid}/export")
    assert exported.status_code == 200 and "attachment" in exported.headers[
        "content-disposition"]
    dump = exported.json()
    assert dump["conversation"]["title"] == "Fruit quiz"
    assert [m["id"] for m in dump["messages"]] == [m["id"] for m in messages]

    share = (await api(web, "POST", f"/conversations/{cid}/share")).json()
    assert share["url"].endswith(f"/v1/shared/{share['token']}")
    public = await api(web, "GET", f"/shared/{share['token']}", auth=False)
    assert public.status_code == 200, public.text
    snapshot = public.json()
    assert snapshot["title"] == "Fruit quiz"
    assert [m["content"] for m in snapshot["messages"]] == [m["content"] for m in messages]
    assert "system_prompt" not in snapshot and "user_id" not in json.dumps(snapshot)
    revoked = await api(web, "DELETE", f"/conversations/{cid}/share")
    assert revoked.status_code == 200
    gone = await api(web, "GET", f"/shared/{share['token']}", auth=False)
    assert gone.status_code == 404 and error_of(gone)["code"] == "not_found"

    deleted = await api(web, "DELETE", f"/conversations/{cid}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": cid, "object": "conversation.deleted", "deleted": True}
    for method, path in [("GET", ""), ("DELETE", ""), ("GET", "/messages"),
                         ("GET", "/export")]:
        after = await api(web, method, f"/conversations/{cid}{path}")
        assert after.status_code == 404, (method, path, after.text)
    assert (await api(web, "GET", "/conversations?archived=all")).json()["data"] == []


async def test_edit_regenerate_tree_and_branch(web: Web) -> None:
    created = await api(web, "POST", "/conversations")  # every field optional: no body
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    reply = (await api(web, "POST", f"/conversations/{cid}/messages",
                       json={"content": "Say hi.", **ASK})).json()
    again = await api(web, "POST", f"/conversations/{cid}/messages",
                      json={"regenerate_message_id": reply["id"], **ASK})
    assert again.status_code == 200, again.text
    assert again.json()["parent_message_id"] == reply["parent_message_id"]
    edited = await api(web, "POST", f"/conversations/{cid}/messages",
                       json={"content": "Say bye.", "edit_message_id":
                             reply["parent_message_id"], **ASK})
    assert edited.status_code == 200, edited.text

    active = (await api(web, "GET", f"/conversations/{cid}")).json()["messages"]
    assert [m["content"] for m in active][:1] == ["Say bye."]
    assert active[1]["id"] == edited.json()["id"]
    tree = (await api(web, "GET", f"/conversations/{cid}?tree=true")).json()["messages"]
    assert len(tree) == 5 and {reply["id"], again.json()["id"]} <= {m["id"] for m in tree}

    branched = await api(web, "POST", f"/conversations/{cid}/branch",
                         json={"message_id": reply["id"]})
    assert branched.status_code == 201, branched.text
    new = branched.json()
    assert (new["parent_conversation_id"], new["branch_point_message_id"]) == (
        cid, reply["id"])
    copied = (await api(web, "GET", f"/conversations/{new['id']}")).json()["messages"]
    assert [m["content"] for m in copied] == ["Say hi.", reply["content"]]


async def test_cursor_pagination(web: Web) -> None:
    made = []
    for i in range(5):
        response = await api(web, "POST", "/conversations", json={"title": f"c{i}"})
        made.append(response.json()["id"])
    seen: list[str] = []
    pages = []
    cursor = None
    while True:
        query = "/conversations?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await api(web, "GET", query)).json()
        assert page["object"] == "list"
        pages.append(len(page["data"]))
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [2, 2, 1]
    assert seen == made[::-1]  # newest first, nothing repeated or skipped


BAD: list[tuple[str, str, Any, int, str | None]] = [
    # method, path ({cid} is a real conversation), body, status, param
    ("POST", "/conversations", b"{nope", 400, None),
    ("POST", "/conversations", [1], 400, None),
    ("POST", "/conversations", {"title": 5}, 400, "title"),
    ("POST", "/conversations", {"title": "x" * 501}, 400, "title"),
    ("POST", "/conversations", {"title": "a\x00b"}, 400, "title"),
    ("POST", "/conversations", {"colour": "red"}, 400, "colour"),
    ("GET", "/conversations?limit=0", None, 400, "limit"),
    ("GET", "/conversations?limit=abc", None, 400, "limit"),
    ("GET", "/conversations?limit=%C2%B2", None, 400, "limit"),
    ("GET", "/conversations?cursor=***", None, 400, "cursor"),
    ("GET", "/conversations?cursor=WzEsMl0", None, 400, "cursor"),
    ("GET", "/conversations?archived=maybe", None, 400, "archived"),
    ("GET", "/conversations/search", None, 400, "q"),
    ("GET", "/conversations/search?q=a&limit=1000", None, 400, "limit"),
    ("GET", "/conversations/{cid}?tree=perhaps", None, 400, "tree"),
    ("GET", "/conversations/no%00such", None, 404, "conversation_id"),
    ("GET", "/conversations/" + "a" * 300, None, 404, "conversation_id"),
    ("PATCH", "/conversations/{cid}", {}, 400, None),
    ("PATCH", "/conversations/{cid}", {"archived": "yes"}, 400, "archived"),
    ("PATCH", "/conversations/{cid}", {"title": None}, 400, "title"),
    ("PATCH", "/conversations/{cid}", {"system_prompt": 3}, 400, "system_prompt"),
    ("POST", "/conversations/{cid}/messages", {}, 400, "content"),
    ("POST", "/conversations/{cid}/messages", {"content": 7}, 400, "content"),
    ("POST", "/conversations/{cid}/messages", {"content": ""}, 400, "content"),
    ("POST", "/conversations/{cid}/messages", {"content": "hi", "stream": "y"}, 400, "stream"),
    ("POST", "/conversations/{cid}/messages", {"content": "hi", "max_tokens": "8"}, 400,
     "max_tokens"),
    ("POST", "/conversations/{cid}/messages", {"content": "hi", "temperature": 9}, 400,
     "temperature"),
    ("POST", "/conversations/{cid}/messages", {"content": "hi", "n": 2, "max_tokens": 4},
     400, "n"),
    ("POST", "/conversations/{cid}/messages", {"content": "hi", "edit_message_id": 4}, 400,
     "edit_message_id"),
    ("POST", "/conversations/{cid}/messages", {"content": "hi", "edit_message_id": "nope"},
     404, "message_id"),
    ("POST", "/conversations/{cid}/messages", {"regenerate_message_id": "nope"}, 404,
     "message_id"),
    ("POST", "/conversations/{cid}/branch", {}, 400, "message_id"),
    ("POST", "/conversations/{cid}/branch", {"message_id": "nope"}, 404, "message_id"),
    ("GET", "/shared/no%20such%20token", None, 404, "token"),
    ("PUT", "/conversations/{cid}", {}, 405, None),
]


async def test_malformed_input_is_a_4xx_in_openai_format(web: Web) -> None:
    cid = (await api(web, "POST", "/conversations", json={"title": "keep"})).json()["id"]
    failures = []
    for method, path, body, status, param in BAD:
        content = body if isinstance(body, bytes) else None
        payload = None if isinstance(body, bytes) else body
        response = await api(web, method, path.replace("{cid}", cid), json=payload,
                             content=content, headers={"Content-Type": "application/json"})
        try:
            error = error_of(response)
            if response.status_code != status or (param and error["param"] != param):
                failures.append((method, path, body, response.status_code, error))
        except (ValueError, KeyError):
            failures.append((method, path, body, response.status_code, response.text))
    assert failures == []
    kept = (await api(web, "GET", f"/conversations/{cid}")).json()
    assert (kept["title"], kept["archived"], kept["messages"]) == ("keep", False, [])

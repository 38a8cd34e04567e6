"""The conversation API over real HTTP with the real model: a whole round trip, branches,
cursor pagination, and malformed input (always an OpenAI-format 4xx, never a 500)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import schemathesis
import trio
from schemathesis.specs.openapi.checks import response_schema_conformance

from chorusline.web import conversations
from tests.web.conftest import MODEL, Web, api

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


async def test_switching_branches_sticks_and_the_next_turn_continues_it(web: Web) -> None:
    cid = (await api(web, "POST", "/conversations")).json()["id"]
    first = (await api(web, "POST", f"/conversations/{cid}/messages",
                       json={"content": "Say hi.", **ASK})).json()
    question = first["parent_message_id"]
    edited = (await api(web, "POST", f"/conversations/{cid}/messages",
                        json={"content": "Say bye.", "edit_message_id": question,
                              **ASK})).json()

    async def shown() -> list[str]:
        return [m["id"] for m in
                (await api(web, "GET", f"/conversations/{cid}")).json()["messages"]]

    assert await shown() == [edited["parent_message_id"], edited["id"]]
    switched = await api(web, "POST", f"/conversations/{cid}/active_branch",
                         json={"message_id": question})
    assert switched.status_code == 200, switched.text
    assert [m["id"] for m in switched.json()["messages"]] == [question, first["id"]]
    assert switched.json()["id"] == cid
    assert await shown() == [question, first["id"]]  # a reload shows the same branch
    more = (await api(web, "POST", f"/conversations/{cid}/messages",
                      json={"content": "And again.", **ASK})).json()
    branch = await shown()
    assert branch[:2] == [question, first["id"]] and branch[-1] == more["id"]
    other = (await api(web, "POST", "/conversations")).json()["id"]
    for body, status, param in (({"message_id": question}, 400, "message_id"),
                                ({}, 400, "message_id"), ({"message_id": 3}, 400,
                                                          "message_id"),
                                ({"message_id": "nobody"}, 404, "message_id"),
                                ({"message_id": question, "x": 1}, 400, "x")):
        target = other if status == 400 and body.get("message_id") == question else cid
        response = await api(web, "POST", f"/conversations/{target}/active_branch",
                             json=body)
        assert (response.status_code, response.json()["error"]["param"]) == \
            (status, param), (body, response.text)
    assert await shown() == branch


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
    # Found by a probe of the served document against the code: each now agrees.
    ("GET", "/conversations/search?q=+", None, 400, "q"),
    ("GET", "/conversations/search?q=", None, 400, "q"),
    ("GET", "/conversations/{cid}?tree=", None, 400, "tree"),
    ("GET", "/conversations/{cid}/messages?tree=TRUE", None, 400, "tree"),
    ("GET", "/conversations?archived=", None, 400, "archived"),
    ("GET", "/conversations?limit=", None, 400, "limit"),
    ("PATCH", "/conversations/{cid}", None, 400, None),
    ("POST", "/conversations/{cid}/messages", None, 400, None),
    ("POST", "/conversations/{cid}/branch", None, 400, None),
    # A turn body holds its own fields and chat-completion sampling fields, nothing else.
    ("POST", "/conversations/{cid}/messages", {"content": "hi", "max_token": 4}, 400,
     "max_token"),
    ("POST", "/conversations/{cid}/messages", {"content": "hi", "conversation_id": "x"},
     400, "conversation_id"),
    ("POST", "/conversations/{cid}/messages",
     {"content": "hi", "messages": [{"role": "user", "content": "hi"}]}, 400, "messages"),
    ("POST", "/conversations/{cid}/messages", {"content": "hi", "model": "gpt-9"}, 404,
     "model"),
    ("POST", "/conversations/{cid}/messages", {"content": "hi", "model": 3}, 400, "model"),
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


async def test_a_turn_body_is_refused_in_openais_words_and_the_served_model_is_taken(
    web: Web,
) -> None:
    cid = (await api(web, "POST", "/conversations")).json()["id"]
    typo = await api(web, "POST", f"/conversations/{cid}/messages",
                     json={"content": "Hi", "max_token": 4})
    assert typo.status_code == 400
    assert error_of(typo)["message"] == "Unrecognized request argument supplied: max_token"
    history = await api(web, "POST", f"/conversations/{cid}/messages",
                        json={"messages": [{"role": "user", "content": "Hi"}]})
    assert history.status_code == 400 and "content" in error_of(history)["message"]
    other = await api(web, "POST", f"/conversations/{cid}/messages",
                      json={"content": "Hi", "model": "gpt-9", "max_tokens": 1})
    assert other.status_code == 404 and error_of(other)["code"] == "model_not_found"
    assert (await api(web, "GET", f"/conversations/{cid}")).json()["messages"] == []
    served = await api(web, "POST", f"/conversations/{cid}/messages",
                       json={"content": "Hi", "model": MODEL, "max_tokens": 1})
    assert served.status_code == 200, served.text
    assert served.json()["model"] == MODEL


async def test_a_route_that_needs_a_body_says_so(web: Web) -> None:
    cid = (await api(web, "POST", "/conversations")).json()["id"]
    for method, path in [("POST", f"/conversations/{cid}/messages"),
                         ("POST", f"/conversations/{cid}/branch"),
                         ("PATCH", f"/conversations/{cid}")]:
        response = await api(web, method, path)
        assert response.status_code == 400, (method, path, response.text)
        assert "none was sent" in error_of(response)["message"], (method, path)


async def test_the_served_document_agrees_with_the_probed_inputs(web: Web) -> None:
    """What the code refuses above, the document refuses too (and what it takes, the
    document allows), so a client generated from it never meets a surprise 400."""
    spec = (await trio.to_thread.run_sync(lambda: httpx2.get(
        f"http://127.0.0.1:{web.port}/openapi.json", timeout=30))).json()
    paths = spec["paths"]

    def query(path: str, method: str, name: str) -> dict[str, Any]:
        params = paths[path].get("parameters", []) + paths[path][method].get("parameters", [])
        schema: dict[str, Any] = next(p["schema"] for p in params if p["name"] == name)
        return schema

    assert query("/v1/conversations/search", "get", "q")["pattern"] == "\\S"
    archived = query("/v1/conversations", "get", "archived")["enum"]
    assert {"0", "1", "true", "false", "all"} <= set(archived) and "" not in archived
    tree = query("/v1/conversations/{conversation_id}", "get", "tree")["enum"]
    assert "" not in tree and "TRUE" not in tree
    assert "400" in paths["/v1/conversations/{conversation_id}"]["get"]["responses"]
    patch = paths["/v1/conversations/{conversation_id}"]["patch"]["requestBody"]
    assert patch["content"]["application/json"]["schema"]["minProperties"] == 1
    assert paths["/v1/conversations"]["post"]["requestBody"]["required"] is False
    for path in ("/v1/conversations/{conversation_id}/messages",
                 "/v1/conversations/{conversation_id}/branch"):
        assert paths[path]["post"]["requestBody"]["required"] is True
    turn = paths["/v1/conversations/{conversation_id}/messages"]["post"]["requestBody"][
        "content"]["application/json"]["schema"]
    assert turn["additionalProperties"] is False and "messages" not in turn["properties"]
    assert set(turn["properties"]) == conversations.TURN_BODY_FIELDS
    accepted = await api(web, "GET", "/conversations?archived=0")
    assert accepted.status_code == 200, accepted.text


async def test_a_streamed_turn_keeps_to_the_served_document(web: Web) -> None:
    """Event by event, as schemathesis reads a ``text/event-stream`` (an event is an
    object with ``data``, not a string)."""
    spec = (await trio.to_thread.run_sync(lambda: httpx2.get(
        f"http://127.0.0.1:{web.port}/openapi.json", timeout=30))).json()
    cid = (await api(web, "POST", "/conversations")).json()["id"]
    operation = schemathesis.openapi.from_dict(spec)[
        "/v1/conversations/{conversation_id}/messages"]["POST"]
    case = operation.Case(path_parameters={"conversation_id": cid},
                          body={"content": "Hi", "stream": True, **ASK},
                          media_type="application/json")
    response = await trio.to_thread.run_sync(lambda: case.call_and_validate(
        base_url=f"http://127.0.0.1:{web.port}",
        headers={"Authorization": f"Bearer {web.key}"}, checks=[response_schema_conformance],
        timeout=60))
    assert response.status_code == 200
    assert response.headers["content-type"][0].startswith("text/event-stream")

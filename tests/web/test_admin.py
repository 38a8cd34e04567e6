"""The admin API on a real server: only admin keys get in, the tree and engine figures
are the live ones, and injected faults really hit (and restart) the actors they name."""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import schemathesis
import trio
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chorusline.chat import AdmissionLimits
from chorusline.runtime import LoadedModel
from tests.web.conftest import MODEL, Web, api, gated_server

ENGINE = "/chat/engines/smollm2-135m-instruct"
ROUTES = [("GET", "/admin/actors", None), ("GET", "/admin/engine", None),
          ("GET", "/admin/faults", None), ("DELETE", "/admin/faults", None),
          ("POST", "/admin/faults", {"path": f"{ENGINE}/driver", "action": "crash"}),
          ("GET", "/admin/events", None), ("GET", "/admin/traces", None),
          ("GET", "/admin/traces/chatcmpl-x", None),
          ("GET", "/admin/actors/children?path=/chat", None),
          ("GET", "/admin/actors/detail?path=/chat", None),
          ("POST", "/admin/requests/chatcmpl-x/abort", {})]


def admin_key(web: Web) -> str:
    return str(web.chat.store.create_api_key(web.user_id, tier="big", is_admin=True)
               .plaintext)


def nodes(tree: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield tree
    for child in tree.get("children", []):
        yield from nodes(child)


async def actor_tree(web: Web, key: str) -> dict[str, dict[str, Any]]:
    """The live tree as served, by path."""
    response = await api(web, "GET", "/admin/actors", key=key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "admin.actors" and body["worker_pid"] == os.getpid()
    return {node["path"]: node for node in nodes(body["tree"])}


async def wait_for_restarts(web: Web, key: str, path: str, restarts: int) -> None:
    """Poll the served tree until the actor at ``path`` has restarted ``restarts``
    times (its supervisor restarts it asynchronously)."""
    with trio.fail_after(60):
        while True:
            node = (await actor_tree(web, key)).get(path)
            if node is not None and node["restarts"] >= restarts \
                    and node["state"] == "running":
                break
            await trio.sleep(0.05)  # a poll interval, not a wait for anything
    assert node["restarts"] == restarts


async def test_an_admin_key_sees_the_tree_and_the_engine(web: Web) -> None:
    key = admin_key(web)
    tree = await actor_tree(web, key)
    assert tree[f"{ENGINE}/driver"]["kind"] == "actor"
    assert tree[f"{ENGINE}/gpu-worker"]["kind"] == "thread"
    assert tree["/chat"]["strategy"] == "one_for_one"
    reply = await api(web, "POST", "/chat/completions", json={
        "model": MODEL, "max_tokens": 3, "ignore_eos": True, "temperature": 0,
        "messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 200, reply.text
    response = await api(web, "GET", "/admin/engine", key=key)
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["object"] == "admin.engine"
    engine, driver = stats["engine"], stats["driver"]
    assert engine["kv_blocks_total"] > 0 and engine["steps"] >= 3
    assert engine["kv_blocks_free"] == engine["kv_blocks_total"] - engine["kv_blocks_used"]
    assert engine["generated_tokens"] >= 3 and engine["num_running"] == 0
    assert driver["path"] == f"{ENGINE}/driver"
    assert driver["steps"] >= 3 and driver["max_batch_size"] >= 1
    assert driver["inflight"] == 0 and "children" not in driver


async def test_other_keys_get_403_and_no_key_401(web: Web) -> None:
    for method, path, body in ROUTES:
        refused = await api(web, method, path, json=body)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json() == {"error": {
            "message": refused.json()["error"]["message"], "type": "invalid_request_error",
            "param": None, "code": "insufficient_permissions"}}
        anonymous = await api(web, method, path, json=body, auth=False)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.json()["error"]["code"] == "invalid_api_key"
    assert web.chat.admin.active_faults() == {}  # the refused POST injected nothing


async def test_a_crash_injected_into_a_conversation_restarts_it(web: Web) -> None:
    key = admin_key(web)
    cid = (await api(web, "POST", "/conversations", json={"title": "chaos"})).json()["id"]
    turn = {"content": "Name a fruit.", "max_tokens": 2, "temperature": 0}
    first = await api(web, "POST", f"/conversations/{cid}/messages", json=turn)
    assert first.status_code == 200, first.text
    path = f"/chat/conversations/conv-{cid}"
    assert (await actor_tree(web, key))[path]["restarts"] == 0

    injected = await api(web, "POST", "/admin/faults", key=key,
                         json={"path": path, "action": "crash"})
    assert injected.status_code == 200, injected.text
    assert injected.json()["active"] == {
        path: {"crash_after": 1, "delay": 0.0, "drop_fraction": 0.0}}
    # The next message the actor handles (this turn) crashes it; the turn is refused
    # with a retryable 503 (not a 500: nothing is wrong with the request).
    crashed = await api(web, "POST", f"/conversations/{cid}/messages", json=turn)
    assert crashed.status_code == 503, crashed.text
    assert crashed.json()["error"]["code"] == "service_unavailable"
    assert crashed.headers["Retry-After"] == "1"
    await wait_for_restarts(web, key, path, 1)
    assert (await api(web, "GET", "/admin/faults", key=key)).json()["active"] == {}
    # The new incarnation serves the conversation again.
    again = await api(web, "POST", f"/conversations/{cid}/messages", json=turn)
    assert again.status_code == 200, again.text


async def test_killing_the_gpu_worker_restarts_it(web: Web) -> None:
    key = admin_key(web)
    path = f"{ENGINE}/gpu-worker"
    killed = await api(web, "POST", "/admin/faults", key=key,
                       json={"path": path, "action": "kill"})
    assert killed.status_code == 200, killed.text
    await wait_for_restarts(web, key, path, 1)
    reply = await api(web, "POST", "/chat/completions", json={
        "model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 200, reply.text


async def test_plans_are_listed_and_cleared(web: Web) -> None:
    key = admin_key(web)
    sessions, buckets = "/chat/sessions", "/chat/buckets"
    for path, fault in ((sessions, {"action": "delay", "seconds": 0.001}),
                        (buckets, {"action": "drop", "fraction": 0.0001, "seed": 3})):
        response = await api(web, "POST", "/admin/faults", key=key,
                             json={"path": path, **fault})
        assert response.status_code == 200, response.text
    active = (await api(web, "GET", "/admin/faults", key=key)).json()["active"]
    assert active[sessions]["delay"] == 0.001 and active[buckets]["drop_fraction"] == 0.0001
    one = await api(web, "DELETE", f"/admin/faults?path={sessions}", key=key)
    assert one.status_code == 200, one.text
    assert (one.json()["cleared"], list(one.json()["active"])) == ([sessions], [buckets])
    rest = await api(web, "DELETE", "/admin/faults", key=key)
    assert (rest.json()["cleared"], rest.json()["active"]) == ([buckets], {})
    assert web.chat.admin.active_faults() == {}
    gone = await api(web, "DELETE", "/admin/faults?path=/chat/nobody", key=key)
    assert gone.status_code == 404 and gone.json()["error"]["param"] == "path"


BAD_FAULTS: list[tuple[Any, int, str | None]] = [
    ([1], 400, None),
    ({"path": "/chat/sessions"}, 400, "action"),
    ({"path": "/chat/sessions", "action": "explode"}, 400, "action"),
    ({"action": "kill"}, 400, "path"),
    ({"path": "chat/sessions", "action": "kill"}, 400, "path"),
    ({"path": "/chat/sessions", "action": "kill", "typo": 1}, 400, "typo"),
    ({"path": "/chat/sessions", "action": "crash", "seconds": 1}, 400, "seconds"),
    ({"path": "/chat/sessions", "action": "crash", "on_message": 0}, 400, "on_message"),
    ({"path": "/chat/sessions", "action": "crash", "on_message": True}, 400, "on_message"),
    ({"path": "/chat/sessions", "action": "delay"}, 400, "seconds"),
    ({"path": "/chat/sessions", "action": "delay", "seconds": -1}, 400, "seconds"),
    ({"path": "/chat/sessions", "action": "drop", "fraction": 1.5}, 400, "fraction"),
    ({"path": f"{ENGINE}/gpu-worker", "action": "crash"}, 400, "action"),
    ({"path": "/chat/no-such-actor", "action": "crash"}, 404, "path"),
    ({"path": "/chat/no-such-actor", "action": "kill"}, 404, "path"),
    ({"path": "/", "action": "kill"}, 404, "path"),
]


async def test_bad_fault_requests_change_nothing(web: Web) -> None:
    key = admin_key(web)
    missing = await api(web, "POST", "/admin/faults", key=key)
    assert missing.status_code == 400, missing.text
    assert "none was sent" in missing.json()["error"]["message"]
    for body, status, param in BAD_FAULTS:
        response = await api(web, "POST", "/admin/faults", key=key, json=body)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert (error["param"], set(error)) == (param, {"message", "type", "param", "code"})
    assert web.chat.admin.active_faults() == {}
    assert all(node["restarts"] == 0 for node in (await actor_tree(web, key)).values())


async def test_children_detail_and_traces_are_served(web: Web) -> None:
    key = admin_key(web)
    reply = await api(web, "POST", "/chat/completions", json={
        "model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 200, reply.text
    request_id = reply.json()["id"]
    page = (await api(web, "GET", "/admin/actors/children?path=/chat&limit=2&offset=1",
                      key=key)).json()
    names = [node["name"] for node in (await actor_tree(web, key))["/chat"]["children"]]
    assert page["object"] == "admin.children" and page["total"] == len(names)
    assert [c["name"] for c in page["children"]] == names[1:3]
    assert all("children" not in c for c in page["children"])
    found = (await api(web, "GET", "/admin/actors/children?path=/chat&q=ENG",
                       key=key)).json()
    assert [c["name"] for c in found["children"]] == ["engines"] and found["matched"] == 1
    detail = (await api(web, "GET", f"/admin/actors/detail?path={ENGINE}/driver",
                        key=key)).json()
    assert detail["object"] == "admin.actor"
    assert detail["node"]["actor_class"] == "EngineDriver"
    assert detail["restart_history"] == [] and isinstance(detail["watchers"], list)
    traces = (await api(web, "GET", "/admin/traces", key=key)).json()
    assert traces["finished"][-1]["request_id"] == request_id
    one = (await api(web, "GET", f"/admin/traces/{request_id}", key=key)).json()
    assert one["object"] == "admin.trace" and one["status"] == "complete"
    assert one["spans"][0]["name"] == "accept"
    for path, status, param in [
            ("/admin/actors/children?path=/chat/nobody", 404, "path"),
            ("/admin/actors/children?path=chat", 400, "path"),
            ("/admin/actors/children?path=/chat&limit=0", 400, "limit"),
            ("/admin/actors/children?path=/chat&offset=x", 400, "offset"),
            ("/admin/actors/detail", 400, "path"),
            ("/admin/actors/detail?path=/chat/nobody", 404, "path"),
            ("/admin/traces/chatcmpl-nobody", 404, "request_id")]:
        response = await api(web, "GET", path, key=key)
        assert (response.status_code, response.json()["error"]["param"]) == (status, param)
    gone = await api(web, "POST", "/admin/requests/chatcmpl-nobody/abort", key=key, json={})
    assert gone.status_code == 404
    done = await api(web, "POST", f"/admin/requests/{request_id}/abort", key=key, json={})
    assert done.status_code == 409 and done.json()["error"]["code"] == "conflict"
    extra = await api(web, "POST", f"/admin/requests/{request_id}/abort", key=key,
                      json={"why": 1})
    assert extra.status_code == 400


async def test_state_changes_refuse_a_body_a_cross_site_form_could_send(web: Web) -> None:
    """A form on another site can post only form-encoded or plain-text bodies (without
    a CORS preflight, which this server never grants), so even with the key such a body
    changes nothing."""
    key = admin_key(web)
    for content_type, body in (("application/x-www-form-urlencoded",
                                b"path=%2Fchat%2Fsessions&action=kill"),
                               ("text/plain", b'{"path": "/chat/sessions", "action": "kill"}'),
                               ("multipart/form-data; boundary=x",
                                b'--x\r\nContent-Disposition: form-data; name="a"\r\n'
                                b'\r\n1\r\n--x--')):
        for path in ("/admin/faults", "/admin/requests/chatcmpl-x/abort"):
            response = await api(web, "POST", path, key=key, content=body,
                                 headers={"Content-Type": content_type})
            assert response.status_code == 415, (path, content_type, response.text)
            assert "application/json" in response.json()["error"]["message"]
    assert web.chat.admin.active_faults() == {}
    assert all(node["restarts"] == 0 for node in (await actor_tree(web, key)).values())


async def test_an_abort_ends_the_generation_and_keeps_the_reply_incomplete(
        chat_model: LoadedModel, tmp_path: Path) -> None:
    gate, entered = threading.Event(), threading.Event()
    async with gated_server(chat_model, tmp_path, AdmissionLimits(), gate, entered) as web:
        key = admin_key(web)
        cid = (await api(web, "POST", "/conversations", json={"title": "t"})).json()["id"]
        finishes: list[str] = []

        async def stream() -> None:
            async with httpx.AsyncClient(timeout=120) as client, client.stream(
                    "POST", f"{web.base_url}/conversations/{cid}/messages",
                    headers={"Authorization": f"Bearer {web.key}"},
                    json={"content": "Count to fifty.", "max_tokens": 200,
                          "stream": True}) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        for choice in json.loads(line[6:]).get("choices", []):
                            if choice.get("finish_reason"):
                                finishes.append(choice["finish_reason"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream)
            await trio.to_thread.run_sync(entered.wait, 60)
            (live,) = web.chat.admin.traces()["live"]
            aborted = await api(web, "POST", f"/admin/requests/{live['request_id']}/abort",
                                key=key, json={})
            assert aborted.status_code == 200, aborted.text
            assert aborted.json()["aborted"] is True
            gate.set()
        assert finishes == ["abort"]
        await web.handles[-1].persisted.wait()
        messages = (await api(web, "GET", f"/conversations/{cid}/messages")).json()["data"]
        assert [m["status"] for m in messages if m["role"] == "assistant"] == ["incomplete"]
        trace = web.chat.admin.trace(live["request_id"])
        assert trace["finish_reason"] == "abort" and trace["status"] == "incomplete"
        kinds = [e.kind for e in web.chat.system.recorder.events]
        assert "request_aborted" in kinds


ADMIN_OPERATIONS = {"GET /v1/admin/actors", "GET /v1/admin/engine", "GET /v1/admin/faults",
                    "POST /v1/admin/faults", "DELETE /v1/admin/faults",
                    "GET /v1/admin/actors/children", "GET /v1/admin/actors/detail",
                    "GET /v1/admin/traces", "GET /v1/admin/traces/{request_id}",
                    "POST /v1/admin/requests/{request_id}/abort"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


async def test_the_admin_api_keeps_to_the_served_document(web: Web) -> None:
    """schemathesis, as in test_openapi, over the admin operations: with an admin key,
    and with the fixture's non-admin key (every answer a documented 403). Generated
    fault paths are pinned to one that names no actor, so fuzzing never kills a live
    one (``/chat`` is critical: killing it stops the server, as documented)."""
    spec = (await trio.to_thread.run_sync(lambda: httpx2.get(
        f"http://127.0.0.1:{web.port}/openapi.json", timeout=30))).json()
    operations = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item}
    assert operations >= ADMIN_OPERATIONS
    for path, item in spec["paths"].items():
        if path.startswith("/v1/admin/"):
            assert all({"401", "403"} <= set(op["responses"]) for op in item.values())
    tightened = copy.deepcopy(spec)
    body = tightened["paths"]["/v1/admin/faults"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    body["properties"]["path"] = {"const": "/chat/no-such-actor"}
    schema = schemathesis.openapi.from_dict(tightened)
    selected = [r.ok() for r in schema.get_all_operations()
                if isinstance(r, Ok) and r.ok().label in ADMIN_OPERATIONS]
    assert {op.label for op in selected} == ADMIN_OPERATIONS
    base_url = f"http://127.0.0.1:{web.port}"
    statuses: dict[str, set[int]] = {}

    def run(operation: Any, key: str) -> None:
        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            response = case.call_and_validate(
                base_url=base_url, headers={"Authorization": f"Bearer {key}"},
                checks=CHECKS, timeout=60)
            statuses.setdefault(operation.label, set()).add(response.status_code)

        check()

    admin = admin_key(web)

    def fuzz() -> None:
        for operation in selected:
            run(operation, admin)
            run(operation, web.key)

    await trio.to_thread.run_sync(fuzz)
    # Generated ids and paths name nothing (404s): only these answer 200 to any query.
    answering = {"GET /v1/admin/actors", "GET /v1/admin/engine", "GET /v1/admin/faults",
                 "DELETE /v1/admin/faults", "GET /v1/admin/traces"}
    assert all({200, 403} <= statuses[op] for op in answering), statuses
    assert all(403 in statuses[op] for op in ADMIN_OPERATIONS), statuses
    # Whether 15 generated bodies include a valid one (a 404 for the pinned path) is up
    # to the generator; the 404 itself is checked in the bad-bodies test above.
    assert {400, 403} <= statuses["POST /v1/admin/faults"], statuses
    assert web.chat.admin.active_faults() == {}

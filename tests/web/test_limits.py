"""The limits every JSON body passes (``chorusline.web.http.json_body``) and the wire
ranges of integer fields, over real HTTP: hostile input that used to end in a 500 (or a
misleading 429) is a 400 or 413 in OpenAI's format, on every route that takes a body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import trio

from chorusline.web.http import MAX_BODY_BYTES, MAX_JSON_DEPTH, nested_too_deeply, surrogate_path
from tests.web.conftest import MODEL, Web

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


async def send(web: Web, method: str, path: str, body: bytes | Iterator[bytes],
               key: str | None = None) -> httpx2.Response:
    """``body`` exactly as given (bytes with a Content-Length, an iterator chunked)."""
    headers = {"Authorization": f"Bearer {key or web.key}",
               "Content-Type": "application/json"}
    return await trio.to_thread.run_sync(lambda: httpx2.request(
        method, f"{web.base_url}{path}", content=body, headers=headers, timeout=120))


def assert_openai_error(response: httpx2.Response, status: int, param: str | None = None,
                        code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code), error
    return error


async def new_conversation(web: Web) -> str:
    created = await send(web, "POST", "/conversations", b"{}")
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# -- nesting depth -------------------------------------------------------------------------

def test_depth_is_measured_outside_strings_and_without_parsing() -> None:
    assert not nested_too_deeply(deep(MAX_JSON_DEPTH), MAX_JSON_DEPTH)
    assert nested_too_deeply(deep(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)
    objects = b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1)
    assert nested_too_deeply(objects, MAX_JSON_DEPTH)
    # Brackets inside strings (escaped quotes too) are text, not structure.
    text = json.dumps({"content": "[" * 500 + '"\\' + "{" * 500}).encode()
    assert not nested_too_deeply(text, MAX_JSON_DEPTH)
    # Wide is not deep: many siblings at depth 2.
    assert not nested_too_deeply(b"[" + b"[1]," * 100_000 + b"[]]", 2)
    # Unclosed brackets are levels the parser would recurse into before failing.
    assert nested_too_deeply(b"[" * 5000 + b'"x', MAX_JSON_DEPTH)
    assert nested_too_deeply(b'"unterminated' + b"[" * 100, 0) is False


async def test_deeply_nested_json_is_a_400_on_every_route(web: Web) -> None:
    """5000 levels made the stdlib parser raise RecursionError: a 500 on each of these.
    (One server for all the cases: starting one is what takes the time.)"""
    nested = b"[" * 5000 + b"]" * 5000
    conversation = await new_conversation(web)
    admin = str(web.chat.store.create_api_key(web.user_id, tier="big", is_admin=True)
                .plaintext)
    for path, body, key in [
        ("/chat/completions", b'{"model":"' + MODEL.encode() + b'","messages":' + nested + b"}",
         None),
        ("/conversations", b'{"title":' + nested + b"}", None),
        (f"/conversations/{conversation}/messages", b'{"content":' + nested + b"}", None),
        ("/admin/faults", b'{"path":' + nested + b"}", admin),
    ]:
        error = assert_openai_error(await send(web, "POST", path, body, key=key), 400)
        assert "nested" in error["message"], path
    # Exactly MAX_JSON_DEPTH deep reaches the parser (and the request's own checks): its
    # 400 names the field, not the depth.
    at_limit = deep(MAX_JSON_DEPTH - 1)  # inside the body object: MAX_JSON_DEPTH in all
    body = b'{"model":"' + MODEL.encode() + b'","messages":' + at_limit + b"}"
    error = assert_openai_error(await send(web, "POST", "/chat/completions", body), 400,
                                "messages[0]")
    assert "nested" not in error["message"]


# -- unpaired surrogates -------------------------------------------------------------------

def test_surrogate_path_names_the_field() -> None:
    assert surrogate_path(json.loads('{"a": [1, {"b": "x\\ud800"}]}')) == "a[1].b"
    assert surrogate_path(json.loads('"\\udc00"')) == ""
    assert surrogate_path(json.loads('{"k\\ud800": 1}')) == ""
    assert surrogate_path(json.loads('{"ok": "\\ud83d\\ude00"}')) is None  # a valid pair


async def test_an_unpaired_surrogate_is_a_400_naming_the_field(web: Web) -> None:
    """``{"title": "\\ud800"}`` was a 500 (UnicodeEncodeError in the SQLite insert) and a
    turn's ``"a\\udc00b"`` crashed the conversation actor."""
    created = await send(web, "POST", "/conversations", json.dumps({"title": "\ud800"}).encode())
    error = assert_openai_error(created, 400, "title")
    assert "surrogate" in error["message"]
    conversation = await new_conversation(web)
    turn = await send(web, "POST", f"/conversations/{conversation}/messages",
                      json.dumps({"content": "a\udc00b", "max_tokens": 2}).encode())
    assert_openai_error(turn, 400, "content")
    chat = await send(web, "POST", "/chat/completions", json.dumps({
        "model": MODEL, "messages": [{"role": "user", "content": "\udbff"}]}).encode())
    assert_openai_error(chat, 400, "messages[0].content")
    # Encoded as (invalid) UTF-8 bytes rather than as an escape: not UTF-8, a 400 too.
    raw = b'{"title": "\xed\xa0\x80"}'
    assert "UTF-8" in assert_openai_error(await send(web, "POST", "/conversations", raw),
                                          400)["message"]
    # The conversation actor survived and still answers.
    again = await send(web, "POST", f"/conversations/{conversation}/messages",
                       json.dumps({"content": "Hi", "max_tokens": 2}).encode())
    assert again.status_code == 200, again.text
    # A valid pair (how json.dumps escapes an emoji) is one character, and welcome.
    created = await send(web, "POST", "/conversations",
                         json.dumps({"title": "ok \U0001f600"}).encode())
    assert created.status_code == 201, created.text
    assert created.json()["title"] == "ok \U0001f600"


# -- integer ranges ------------------------------------------------------------------------

async def test_out_of_range_integers_are_a_400_naming_the_param(web: Web) -> None:
    """A max_tokens of 2**63 or 10**30 overflowed the context arithmetic into a 429
    ``rate_limit_exceeded``, which a client retries forever."""

    async def chat(**fields: Any) -> httpx2.Response:
        return await send(web, "POST", "/chat/completions", json.dumps({
            "model": MODEL, "messages": QUESTION, **fields}).encode())

    for value in (2**63, 10**30, 2**31):
        error = assert_openai_error(await chat(max_tokens=value), 400, "max_tokens",
                                    "invalid_sampling_params")
        assert "2147483647" in error["message"]
    for field, value in [("n", 10**30), ("seed", 2**64), ("top_k", 10**30),
                         ("top_logprobs", 10**30), ("temperature", 10**400)]:
        assert_openai_error(await chat(logprobs=True, **{field: value}), 400, field,
                            "invalid_sampling_params")
    for key in ("99999999999", "1" * 5000, "-1"):
        assert_openai_error(await chat(logit_bias={key: 1}), 400, "logit_bias",
                            "invalid_token_id")
    # The largest accepted budget reaches the context check (no window holds it), whose
    # status (400 or 413) is the chat layer's to choose.
    largest = await chat(max_tokens=2**31 - 1)
    assert largest.status_code in (400, 413), largest.text
    assert largest.json()["error"]["code"] == "context_length_exceeded"


# -- body size -----------------------------------------------------------------------------

def padded(size: int) -> bytes:
    """A chat request of exactly ``size`` bytes whose one fault is ``stream``: a 400
    naming it proves the body was parsed (and refused without generating)."""
    # The padding is a field the route takes (an unknown one would be the fault).
    head = json.dumps({"model": MODEL, "stream": "yes", "messages": [
        {"role": "system", "content": ""}]})
    body = head[:-4] + "x" * (size - len(head)) + '"}]}'
    assert len(body) == size
    return body.encode()


async def test_a_body_at_the_limit_is_parsed_and_one_byte_more_is_a_413(web: Web) -> None:
    at_limit = await send(web, "POST", "/chat/completions", padded(MAX_BODY_BYTES))
    assert_openai_error(at_limit, 400, "stream")
    over = await send(web, "POST", "/chat/completions", padded(MAX_BODY_BYTES + 1))
    error = assert_openai_error(over, 413)
    assert str(MAX_BODY_BYTES) in error["message"]
    # Chunked, there is no Content-Length to refuse up front: the read stops once the
    # body outgrows the limit.
    body = padded(MAX_BODY_BYTES + 1)
    chunks = iter([body[i:i + 65536] for i in range(0, len(body), 65536)])
    assert_openai_error(await send(web, "POST", "/chat/completions", chunks), 413)
    # Every route has the limit.
    over = b'{"title": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert_openai_error(await send(web, "POST", "/conversations", over), 413)

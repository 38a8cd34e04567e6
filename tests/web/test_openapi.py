"""``/openapi.json``: the document is complete, and the real server keeps to it.

schemathesis generates requests from the document as the server serves it and checks
every response: no 5xx, a documented status and content type, and a body matching the
schema. Hypothesis runs in a worker thread (its test function is synchronous) while the
server runs in the test's trio loop, like the other HTTP tests.

For speed, a copy of the document is tightened before generation; the served document
stays the real contract. Tightening only narrows what is generated (the served model
name, ``max_tokens`` required and at most 2, few and short messages and inputs, no
``ignore_eos``), so every request sent is still valid under the served document.
"""

from __future__ import annotations

import copy
import re
from typing import Any

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

from chorusline.web import create_app
from tests.web.conftest import MODEL, Web

CORE = {"GET /health", "GET /ready", "GET /v1/models", "POST /v1/chat/completions"}
CONVERSATIONS = {
    "POST /v1/conversations", "GET /v1/conversations", "GET /v1/conversations/search",
    "GET /v1/conversations/{conversation_id}", "PATCH /v1/conversations/{conversation_id}",
    "DELETE /v1/conversations/{conversation_id}",
    "GET /v1/conversations/{conversation_id}/messages",
    "POST /v1/conversations/{conversation_id}/messages",
    "POST /v1/conversations/{conversation_id}/branch",
    "POST /v1/conversations/{conversation_id}/share",
    "DELETE /v1/conversations/{conversation_id}/share",
    "GET /v1/conversations/{conversation_id}/export", "GET /v1/shared/{token}",
    "POST /v1/conversations/{conversation_id}/messages/{message_id}/stop",
    "PUT /v1/conversations/{conversation_id}/messages/{message_id}/feedback",
    "DELETE /v1/conversations/{conversation_id}/messages/{message_id}/feedback",
    "GET /v1/conversations/{conversation_id}/feedback",
    "POST /v1/chat/completions/{request_id}/stop", "GET /v1/me", "PATCH /v1/me",
    "POST /v1/conversations/{conversation_id}/active_branch",
    "POST /v1/auth/login", "GET /v1/auth/session", "POST /v1/auth/logout",
    "GET /v1/conversations/{conversation_id}/share", "GET /v1/me/api_keys",
    "POST /v1/me/api_keys", "DELETE /v1/me/api_keys/{key_id}", "GET /v1/me/usage",
}
#: What the app routes that is not API: pages and their files.
PAGES = {"/", "/login", "/console", "/chat/static/{name}", "/console/static/{name}",
         "/common/static/{name}"}
#: OpenAI's other endpoints (``chorusline.web.openapi_endpoints``).
ENDPOINTS = {"POST /v1/completions", "POST /v1/embeddings", "POST /v1/moderations",
             "GET /v1/models/{model}"}
EMBEDDING_MODEL = "all-minilm-l6-v2"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
#: Examples per operation: generating ones are the slow ones (a prefill and 1-2 tokens).
GENERATING = {"POST /v1/chat/completions": 25,
              "POST /v1/conversations/{conversation_id}/messages": 10,
              "POST /v1/completions": 12, "POST /v1/embeddings": 12}
OTHERS = 8


async def fetch_spec(web: Web) -> dict[str, Any]:
    response = await trio.to_thread.run_sync(
        lambda: httpx2.get(f"http://127.0.0.1:{web.port}/openapi.json", timeout=30))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    spec: dict[str, Any] = response.json()
    return spec


async def test_the_document_describes_every_route(web: Web) -> None:
    spec = await fetch_spec(web)
    assert spec["openapi"].startswith("3.1")
    operations = {f"{method.upper()} {path}" for path, item in spec["paths"].items()
                  for method in item if method != "parameters"}
    assert operations >= CORE | CONVERSATIONS | ENDPOINTS | {"GET /metrics"}
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert set(chat["responses"]) == {"200", "400", "401", "404", "413", "429", "503"}
    assert {"application/json", "text/event-stream"} <= set(chat["responses"]["200"]["content"])
    assert "Retry-After" in chat["responses"]["429"]["headers"]
    assert "x-ratelimit-remaining-tokens" in chat["responses"]["429"]["headers"]
    accepted = spec["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    for name in ("model", "messages", "max_tokens", "max_completion_tokens", "temperature",
                 "top_p", "top_k", "min_p", "seed", "stop", "n", "presence_penalty",
                 "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "user",
                 "stream", "stream_options", "conversation_id"):
        assert name in accepted, name


async def test_every_routed_operation_is_in_the_document(web: Web) -> None:
    """Read from the app's own routing table, so a route added without its contract
    fails here rather than going unfuzzed."""
    spec = await fetch_spec(web)
    documented = {f"{method.upper()} {path}" for path, item in spec["paths"].items()
                  for method in item if method != "parameters"}
    routed = set()
    for rule in create_app(web.chat).url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        if path in PAGES:
            continue
        routed |= {f"{m} {path}" for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    assert routed - documented == set()


async def test_the_other_openai_endpoints_are_described_closed_with_their_errors(
        web: Web) -> None:
    spec = await fetch_spec(web)
    paths, schemas = spec["paths"], spec["components"]["schemas"]
    expected = {
        ("/v1/completions", "post"): ("CompletionRequest", "TextCompletion",
                                      {"400", "401", "404", "413", "429", "503"}),
        ("/v1/embeddings", "post"): ("EmbeddingRequest", "EmbeddingList",
                                     {"400", "401", "404", "413", "429", "503"}),
        ("/v1/moderations", "post"): ("ModerationRequest", "ModerationResponse",
                                      {"400", "401", "404", "413"}),
        ("/v1/models/{model}", "get"): (None, "Model", {"401", "404"}),
    }
    for (path, method), (request, reply, errors) in expected.items():
        operation = paths[path][method]
        assert operation["security"] == [{"bearerAuth": []}], path
        responses = operation["responses"]
        assert set(responses) == {"200", *errors}, path
        for status in errors:
            error = responses[status]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}, (path, status)
        ok = responses["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": f"#/components/schemas/{reply}"}, path
        assert schemas[reply]["additionalProperties"] is False, reply
        if request is not None:
            body = operation["requestBody"]
            assert body["required"] is True
            assert body["content"]["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{request}"}
            # The server refuses unknown fields, so the schema says so.
            assert schemas[request]["additionalProperties"] is False, request
    assert set(schemas["EmbeddingRequest"]["required"]) == {"model", "input"}
    assert schemas["EmbeddingRequest"]["properties"]["encoding_format"]["enum"] == [
        "float", "base64", None]
    assert "text/event-stream" in paths["/v1/completions"]["post"]["responses"]["200"][
        "content"]


def tighten(spec: dict[str, Any]) -> dict[str, Any]:
    """The served document, narrowed so generation stays short (see the module doc)."""
    out = copy.deepcopy(spec)
    schemas = out["components"]["schemas"]
    short = {"type": "string", "maxLength": 40}
    schemas["ChatMessage"]["properties"]["content"] = {"anyOf": [short, {"type": "null"}]}
    request = schemas["ChatCompletionRequest"]
    request["properties"]["model"] = {"const": MODEL}
    request["properties"]["messages"]["maxItems"] = 3
    message = out["components"]["schemas"]["ChatMessage"]
    message["properties"]["role"]["enum"] = ["system", "developer", "user", "assistant"]
    for name in ("tool_calls", "tool_call_id"):
        message["properties"].pop(name)
    turn = out["paths"]["/v1/conversations/{conversation_id}/messages"]["post"][
        "requestBody"]["content"]["application/json"]["schema"]
    turn["properties"]["content"] = short
    for body in (request, turn):
        props = body["properties"]
        props["max_tokens"] = {"type": "integer", "minimum": 1, "maximum": 2}
        props["n"] = {"type": "integer", "minimum": 1, "maximum": 2}
        # Tools, grammars and tool messages need ids and schemas that agree with each
        # other, which random bodies almost never do: they are fuzzed for a clean 400
        # by their own tests, and kept out here so generated turns reach the engine.
        for name in ("max_completion_tokens", "ignore_eos", "tools", "tool_choice",
                     "parallel_tool_calls", "response_format"):
            props.pop(name, None)
        body["required"] = sorted({*body.get("required", []), "max_tokens"})
    tighten_endpoints(schemas)
    return out


def tighten_endpoints(schemas: dict[str, Any]) -> None:
    """The other endpoints' bodies, narrowed the same way: the served models, short
    texts, few inputs and at most 2 generated tokens per choice."""
    short = {"type": "string", "minLength": 1, "maxLength": 40}
    few_ids = {"type": "array", "minItems": 1, "maxItems": 8, "items": {"type": "integer"}}
    inputs = {"anyOf": [short, {"type": "array", "minItems": 1, "maxItems": 3,
                                "items": short}, few_ids]}
    completion = schemas["CompletionRequest"]
    completion["properties"].update({
        "model": {"const": MODEL}, "prompt": inputs,
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": 2},
        "n": {"type": "integer", "minimum": 1, "maximum": 2},
        "best_of": {"type": "integer", "minimum": 1, "maximum": 2}})
    completion["required"] = ["max_tokens", "model", "prompt"]
    embedding = schemas["EmbeddingRequest"]["properties"]
    embedding.update({"model": {"const": EMBEDDING_MODEL}, "input": inputs})
    moderation = schemas["ModerationRequest"]["properties"]
    moderation["input"] = {"anyOf": [short, {"type": "array", "minItems": 1,
                                             "maxItems": 3, "items": short}]}


async def test_the_server_keeps_to_its_document(web: Web) -> None:
    spec = tighten(await fetch_spec(web))
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()
                  if isinstance(result, Ok)]
    covered = CORE | CONVERSATIONS | ENDPOINTS
    selected = [op for op in operations if op.label in covered]
    assert {op.label for op in selected} == covered
    base_url = f"http://127.0.0.1:{web.port}"
    auth = {"Authorization": f"Bearer {web.key}"}
    statuses: dict[str, set[int]] = {}

    def run(operation: Any) -> None:
        @given(case=operation.as_strategy())
        @settings(max_examples=GENERATING.get(operation.label, OTHERS), deadline=None,
                  database=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            response = case.call_and_validate(base_url=base_url, headers=auth,
                                              checks=CHECKS, timeout=60)
            statuses.setdefault(operation.label, set()).add(response.status_code)

        check()

    def fuzz() -> None:
        for operation in selected:
            run(operation)

    await trio.to_thread.run_sync(fuzz)
    # The generated requests really reached the engine (not only validation errors).
    assert 200 in statuses["POST /v1/chat/completions"], statuses
    assert 201 in statuses["POST /v1/conversations"], statuses
    for label in ("POST /v1/completions", "POST /v1/embeddings", "POST /v1/moderations"):
        assert 200 in statuses[label], statuses

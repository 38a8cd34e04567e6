"""The wire format without a server: request parsing, error mapping, and a real bug
turning into an OpenAI-format 500 (through Quart's test client, with a stub service)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from chorusline.chat import ChatService
from chorusline.protocols import InvalidRequest, Overloaded, RateLimited, openai as wire
from chorusline.web import create_app
from chorusline.web.app import error_response
from chorusline.web.completions import build_request


def test_parsing_normalises_what_openai_clients_send() -> None:
    parsed = wire.parse_chat_request({
        "model": "m",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "a"},
                                         {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": None},
        ],
        "max_tokens": 5, "max_completion_tokens": 7, "stop": "END",
        "logit_bias": {"42": -100}, "seed": 3, "stream": True,
        "stream_options": {"include_usage": True}, "user": "u",
    })
    assert [(m.role, m.content) for m in parsed.messages] == [
        ("system", "Be brief."), ("user", "ab"), ("assistant", "")]
    assert parsed.sampling == {"max_tokens": 7, "stop": ("END",), "logit_bias": {42: -100},
                               "seed": 3}
    assert parsed.stream and parsed.include_usage and parsed.user == "u"


def test_user_reaches_the_turn_and_an_overlong_one_is_refused() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": "end-7"}
    assert build_request(wire.parse_chat_request(body), None).end_user == "end-7"
    stored = {**body, "conversation_id": "c1"}
    assert build_request(wire.parse_chat_request(stored), None).end_user == "end-7"
    with pytest.raises(InvalidRequest, match="at most 256") as info:
        wire.parse_chat_request({**body, "user": "u" * 257})
    assert info.value.param == "user"


def test_image_parts_and_empty_messages_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        wire.parse_chat_request({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})
    with pytest.raises(InvalidRequest):
        wire.parse_chat_request({"model": "m", "messages": []})


def test_engine_finish_reasons_map_to_openai_ones() -> None:
    assert [wire.finish_reason(r) for r in ("stop", "length", "content_filter", "engine-x")] == [
        "stop", "length", "content_filter", "stop"]


def test_a_truncated_reply_says_how_it_ended_on_the_wire() -> None:
    # chorusline's extensions: a replay (or a timeout) must not claim "stop".
    truncated = ("timeout", "interrupted", "abort", "error")
    assert [wire.finish_reason(r) for r in truncated] == list(truncated)


def test_overload_and_rate_limits_carry_retry_after() -> None:
    busy = error_response(Overloaded("busy", retry_after=0.2))
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    limited = error_response(RateLimited("slow down", retry_after=2.5,
                                         headers={"x-ratelimit-remaining-requests": "0"}))
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"


class _BrokenService:
    conversations = admin = None  # read (not used) when the routes are registered
    model_name = "m"  # the OpenAPI document's example

    async def authenticate(self, key: str) -> Any:
        raise RuntimeError("a bug")


async def test_a_bug_is_a_logged_openai_format_500(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(cast(ChatService, _BrokenService()))
    response = await app.test_client().post(
        "/v1/chat/completions", json={"model": "m", "messages": []},
        headers={"Authorization": "Bearer k"})
    assert response.status_code == 500
    body = await response.get_json()
    assert body["error"]["type"] == "server_error"
    assert "a bug" in caplog.text


def test_logprob_fields_reach_the_sampling_params() -> None:
    parsed = wire.parse_chat_request({"model": "m", "messages": [{"role": "user",
                                      "content": "hi"}], "logprobs": True, "top_logprobs": 5})
    assert parsed.sampling == {"logprobs": True, "top_logprobs": 5}
    params = build_request(parsed, None).params
    assert params.logprobs and params.top_logprobs == 5


@pytest.mark.parametrize("fields", [
    {"logprobs": True, "top_logprobs": 21}, {"logprobs": True, "top_logprobs": -1},
    {"top_logprobs": 1}, {"logprobs": "yes"}, {"logprobs": True, "top_logprobs": 2.5},
    {"logprobs": True, "top_logprobs": True},
])
def test_bad_logprob_fields_are_a_400(fields: dict[str, Any]) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    with pytest.raises(InvalidRequest) as caught:
        build_request(wire.parse_chat_request(body), None)
    assert caught.value.http_status == 400
    assert caught.value.param in ("logprobs", "top_logprobs")

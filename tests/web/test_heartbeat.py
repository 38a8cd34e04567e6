"""SSE keep-alive comments while a streaming request waits for its first token."""

from __future__ import annotations

import json

import httpx2
import pytest
import trio
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from chorusline.web import completions
from tests.web.conftest import MODEL, Web

#: A prompt of roughly a thousand tokens: its prefill alone takes far longer than the
#: millisecond heartbeat below, so keep-alives before the first token are certain.
LONG: list[ChatCompletionMessageParam] = [{
    "role": "user",
    "content": "Some words to read first. " * 160 + "Now: what is the capital of France?",
}]


@pytest.fixture
def fast_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(completions, "HEARTBEAT_SECONDS", 0.001)


@pytest.mark.usefixtures("fast_heartbeat")
async def test_keep_alive_comments_arrive_before_the_first_token(web: Web) -> None:
    body = {"model": MODEL, "messages": LONG, "stream": True, "max_tokens": 4,
            "temperature": 0}
    headers = {"Authorization": f"Bearer {web.key}"}
    response = await trio.to_thread.run_sync(lambda: httpx2.post(
        f"{web.base_url}/chat/completions", json=body, headers=headers, timeout=120))
    assert response.status_code == 200
    events = response.text.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    first_data = next(i for i, e in enumerate(events) if e.startswith("data: "))
    assert first_data >= 1
    assert set(events[:first_data]) == {": keep-alive"}
    for event in events[first_data:-1]:  # every event is a comment or one data line
        assert event == ": keep-alive" or (event.startswith("data: ")
                                           and "\n" not in event), event
    chunks = [json.loads(e[6:]) for e in events[first_data:-2] if e.startswith("data: ")]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


async def test_default_interval_sends_no_comment_on_a_quick_reply(web: Web) -> None:
    assert completions.HEARTBEAT_SECONDS == 5.0
    body = {"model": MODEL, "stream": True, "max_tokens": 2,
            "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"Authorization": f"Bearer {web.key}"}
    response = await trio.to_thread.run_sync(lambda: httpx2.post(
        f"{web.base_url}/chat/completions", json=body, headers=headers, timeout=120))
    assert ": keep-alive" not in response.text and response.text.endswith("data: [DONE]\n\n")


@pytest.mark.usefixtures("fast_heartbeat")
async def test_the_openai_sdk_ignores_the_comments(web: Web) -> None:
    sdk = OpenAI(api_key=web.key, base_url=web.base_url, max_retries=0, timeout=120)

    def run() -> str:
        stream = sdk.chat.completions.create(
            model=MODEL, messages=LONG, temperature=0, max_tokens=12,
            stream=True)
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    text = await trio.to_thread.run_sync(run)
    assert text.strip()
    whole = await trio.to_thread.run_sync(lambda: sdk.chat.completions.create(
        model=MODEL, messages=LONG, temperature=0, max_tokens=12))
    assert text == whole.choices[0].message.content

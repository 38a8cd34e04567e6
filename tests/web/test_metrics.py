"""``/metrics`` against a real server: the text parses, and the counters a dashboard
relies on move by exactly what one request did. Plus the two properties that only a
unit test shows cleanly: each app has its own registry, and a failing actor snapshot
degrades the scrape instead of failing it."""

from __future__ import annotations

from typing import Any, cast

import httpx2
import trio
from prometheus_client.parser import text_string_to_metric_families

from chorusline.chat import ChatService
from chorusline.web import create_app
from tests.web.conftest import MODEL, Web
from tests.web.test_http import QUESTION, get, post

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
CHAT_ROUTE = {"route": "/v1/chat/completions", "method": "POST"}


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value, 0 when the series does not exist yet (a counter that has
    never been incremented for these labels)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(web: Web) -> Samples:
    response = await get(web, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def test_metrics_parse_and_expose_the_engine_state(web: Web) -> None:
    samples = await scrape(web)
    names = {name for name, _ in samples}
    for gauge in ("chorusline_queue_depth", "chorusline_running_sequences",
                  "chorusline_kv_cache_usage_ratio", "chorusline_inflight_requests",
                  "chorusline_actor_restarts", "chorusline_dead_letters_total",
                  "chorusline_actors", "chorusline_mailbox_depth"):
        assert gauge in names, gauge
    assert value(samples, "chorusline_actor_system_up") == 1
    assert value(samples, "chorusline_actors") > 0
    info = [labels for (name, labels), v in samples.items()
            if name == "chorusline_model_info" and v == 1]
    assert [dict(labels)["model"] for labels in info] == [MODEL]
    assert dict(info[0])["capabilities"] == "chat,completions"
    assert 0.0 <= value(samples, "chorusline_kv_cache_usage_ratio", model=MODEL) <= 1.0


async def test_a_completion_moves_the_counters(web: Web) -> None:
    before = await scrape(web)
    response = await post(web, {"model": MODEL, "messages": QUESTION, "temperature": 0,
                                "max_tokens": 4})
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    after = await scrape(web)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("chorusline_http_requests_total", status="200", **CHAT_ROUTE) == 1
    generated = delta("chorusline_generation_tokens_total", model=MODEL)
    assert generated == usage["completion_tokens"] > 0
    assert delta("chorusline_prompt_tokens_total", model=MODEL) == usage["prompt_tokens"] > 0
    assert delta("chorusline_time_to_first_token_seconds_count", model=MODEL) == 1
    assert delta("chorusline_e2e_request_latency_seconds_count", model=MODEL) == 1
    # Four tokens: the first is TTFT, the other three are inter-token gaps.
    assert delta("chorusline_inter_token_latency_seconds_count", model=MODEL) == usage[
        "completion_tokens"] - 1


async def test_a_stream_is_observed_once(web: Web) -> None:
    before = await scrape(web)
    response = await post(web, {"model": MODEL, "messages": QUESTION, "temperature": 0,
                                "max_tokens": 3, "stream": True,
                                "stream_options": {"include_usage": True}})
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    after = await scrape(web)
    assert (value(after, "chorusline_e2e_request_latency_seconds_count", model=MODEL)
            - value(before, "chorusline_e2e_request_latency_seconds_count", model=MODEL)) == 1
    assert (value(after, "chorusline_generation_tokens_total", model=MODEL)
            - value(before, "chorusline_generation_tokens_total", model=MODEL)) == 3


async def test_a_429_counts_as_a_refusal(web: Web) -> None:
    key = web.new_key("tiny")  # one request per minute
    statuses = []
    for _ in range(2):
        response = await post(web, {"model": MODEL, "messages": QUESTION, "max_tokens": 1},
                              key=key)
        statuses.append(response.status_code)
    assert statuses[-1] == 429, statuses
    samples = await scrape(web)
    refused = statuses.count(429)
    assert value(samples, "chorusline_rate_limit_refusals_total",
                 route="/v1/chat/completions") == refused
    assert value(samples, "chorusline_http_requests_total", status="429",
                 **CHAT_ROUTE) == refused


async def test_an_unknown_route_is_one_series_not_one_per_path(web: Web) -> None:
    for path in ("/nothing/a", "/nothing/b"):
        assert (await get(web, path)).status_code == 404
    samples = await scrape(web)
    assert value(samples, "chorusline_http_requests_total", route="unmatched",
                 method="GET", status="404") == 2


class _DownAdmin:
    def snapshot(self) -> dict[str, Any]:
        raise RuntimeError("actor system is gone")


class _DownService:
    """A service whose actor system cannot be read (shutting down, crashed)."""

    admin = _DownAdmin()
    conversations = accounts = None  # read (not used) when the routes are registered
    model_name = "m"  # the OpenAPI document's example


async def test_each_app_has_its_own_registry_and_a_dead_tree_degrades_the_scrape() -> None:
    # Two apps in one process: with prometheus_client's global registry the second
    # would fail with "Duplicated timeseries".
    apps = [create_app(cast(ChatService, _DownService())) for _ in range(2)]
    for app in apps:
        await app.test_client().get("/health")
    response = await apps[0].test_client().get("/metrics")
    assert response.status_code == 200
    samples = parse(await response.get_data(as_text=True))
    assert value(samples, "chorusline_actor_system_up") == 0
    assert value(samples, "chorusline_http_requests_total", route="/health",
                 method="GET", status="200") == 1


async def test_metrics_need_no_key(web: Web) -> None:
    response = await trio.to_thread.run_sync(
        lambda: httpx2.get(f"http://127.0.0.1:{web.port}/metrics", timeout=30))
    assert response.status_code == 200

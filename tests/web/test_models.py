"""``GET /v1/models`` and ``GET /v1/models/{model}`` with the official SDK, and both
bundled models behind one server: each listed with what it can do, Gemma's completions
through the SDK, a turn that falls back saying so in ``x-chorusline-fallback`` and in its
``model``, and ``/metrics`` per model."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx2
import openai
import pytest
import trio

from chorusline.chat import AdmissionLimits
from chorusline.chat.loading import GEMMA3, SMOLLM2
from chorusline.runtime import Engine, EngineConfig, LoadedModel
from tests.web.conftest import MODEL, GatedEngine, Web, api, running_server
from tests.web.test_openai_sdk import client, in_thread

CONFIG = EngineConfig(kv_cache_bytes=32 * 1024 * 1024, max_model_len=1024)


def served(web: Web) -> list[str]:
    embedding = web.chat.embedding_model
    return [m.name for m in web.chat.models] + ([] if embedding is None else [embedding])


async def test_the_list_names_the_chat_model_first_and_the_embedding_model(web: Web) -> None:
    models = await in_thread(lambda: client(web).models.list())
    assert [m.id for m in models.data] == served(web)
    assert all(m.object == "model" and m.owned_by == "chorusline" for m in models.data)


async def test_retrieve_gives_openais_model_object(web: Web) -> None:
    sdk = client(web)
    for name in served(web):
        model = await in_thread(partial(sdk.models.retrieve, name))
        assert (model.id, model.object, model.owned_by) == (name, "model", "chorusline")
        assert model.created > 0


async def test_an_unknown_model_is_a_404_in_openais_shape(web: Web) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await in_thread(lambda: client(web).models.retrieve("gpt-9"))
    assert caught.value.code == "model_not_found"
    response = await api(web, "GET", "/models/org/gpt-9")
    assert response.status_code == 404
    assert response.json() == {"error": {
        "message": "The model 'org/gpt-9' does not exist", "type": "invalid_request_error",
        "param": "model", "code": "model_not_found"}}


async def test_both_need_a_key(web: Web) -> None:
    for path in ("/models", f"/models/{MODEL}"):
        response = await api(web, "GET", path, auth=False)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.fixture
async def both(chat_model: LoadedModel, gemma_model: LoadedModel,
               tmp_path: Path) -> AsyncIterator[tuple[Web, threading.Event,
                                                       threading.Event]]:
    """Both models; Gemma's engine holds each step until the gate is set."""
    gate, entered = threading.Event(), threading.Event()
    gemma = lambda: GatedEngine(Engine(gemma_model, CONFIG), gate, entered)  # noqa: E731
    async with running_server({SMOLLM2: chat_model, GEMMA3: gemma_model},
                              tmp_path / "chat.db", config=CONFIG,
                              limits=AdmissionLimits(max_waiting_requests=1),
                              make_engine={GEMMA3: gemma}) as web:
        try:
            yield web, gate, entered
        finally:
            gate.set()


@pytest.mark.slow
async def test_two_models_are_listed_with_what_each_can_do(
        both: tuple[Web, threading.Event, threading.Event]) -> None:
    web, gate, _ = both
    gate.set()
    listing = (await api(web, "GET", "/models")).json()["data"]
    by_id = {m["id"]: m for m in listing}
    assert [m["id"] for m in listing][:2] == [SMOLLM2, GEMMA3]
    assert by_id[SMOLLM2]["capabilities"] == ["chat", "completions", "tools"]
    assert by_id[GEMMA3]["capabilities"] == ["completions"]
    assert by_id[SMOLLM2]["aliases"] == ["default", "fast"]
    assert by_id[GEMMA3]["fallback"] == [SMOLLM2]
    assert 0 < by_id[GEMMA3]["context_window"] <= 1024
    assert (await api(web, "GET", "/models/fast")).json()["id"] == SMOLLM2
    sdk = client(web)
    done = await in_thread(partial(sdk.completions.create, model=GEMMA3,
                                   prompt="The capital of France is", max_tokens=8,
                                   temperature=0))
    assert done.model == GEMMA3 and done.choices[0].text
    assert done.usage is not None and done.usage.prompt_tokens == 6  # <bos> + 5 tokens
    with pytest.raises(openai.BadRequestError, match="base model"):
        await in_thread(partial(sdk.chat.completions.create, model=GEMMA3,
                                messages=[{"role": "user", "content": "Hi"}]))


@pytest.mark.slow
async def test_an_overloaded_model_falls_back_and_the_response_says_so(
        both: tuple[Web, threading.Event, threading.Event]) -> None:
    web, gate, entered = both
    body = {"model": GEMMA3, "prompt": "Once upon a time", "max_tokens": 6,
            "temperature": 0}
    async with trio.open_nursery() as nursery:
        held: list[int] = []

        async def first() -> None:  # waits in Gemma's engine until the gate opens
            held.append((await api(web, "POST", "/completions", json=body)).status_code)

        nursery.start_soon(first)
        await trio.to_thread.run_sync(entered.wait)
        response = await api(web, "POST", "/completions", json=body)
        assert response.status_code == 200
        assert response.headers["x-chorusline-fallback"] == f"{GEMMA3} -> {SMOLLM2}"
        assert response.json()["model"] == SMOLLM2
        gate.set()
    assert held == [200]
    metrics = (await trio.to_thread.run_sync(
        lambda: httpx2.get(f"http://127.0.0.1:{web.port}/metrics", timeout=60))).text
    assert (f'chorusline_model_fallbacks_total{{from_model="{GEMMA3}",'
            f'to_model="{SMOLLM2}"}} 1.0') in metrics
    for model, capabilities in ((SMOLLM2, "chat,completions"), (GEMMA3, "completions")):
        assert f'chorusline_queue_depth{{model="{model}"}}' in metrics
        info = [line for line in metrics.splitlines()
                if line.startswith("chorusline_model_info{") and f'model="{model}"' in line]
        assert len(info) == 1 and f'capabilities="{capabilities}"' in info[0]
    assert f'chorusline_generation_tokens_total{{model="{SMOLLM2}"}}' in metrics


@pytest.mark.slow
async def test_the_chat_pages_model_picker_offers_only_chat_models(
        both: tuple[Web, threading.Event, threading.Event]) -> None:
    from playwright.sync_api import BrowserContext, expect

    from tests.web.test_chat_page import PASSWORD, in_browser, sign_in

    web, gate, _ = both
    gate.set()
    await web.chat.accounts.create_person("ann", PASSWORD)

    def scenario(context: BrowserContext, base: str) -> None:
        page = context.new_page()
        sign_in(page, base)
        page.click("#open-settings")
        options = page.locator("#model option")
        expect(options).to_have_count(1)  # not the base model, not the embedding model
        expect(options.first).to_have_text(SMOLLM2)

    await in_browser(web, scenario)


@pytest.mark.slow
async def test_the_console_shows_each_models_engine(
        both: tuple[Web, threading.Event, threading.Event]) -> None:
    from playwright.sync_api import Page, expect

    from tests.web.test_admin import admin_key
    from tests.web.test_console_page import in_browser as on_console, sign_in as key_in

    web, gate, _ = both
    gate.set()
    key = admin_key(web)

    def scenario(page: Page) -> None:
        key_in(page, key)
        rows = page.locator("#engine-models tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0).locator("td").first).to_have_text(SMOLLM2)
        expect(rows.nth(1).locator("td").first).to_have_text(GEMMA3)
        expect(rows.nth(1).locator("td").nth(1)).to_have_text("running")
        expect(page.locator("#panel-engine h3", has_text="Now")).to_have_text(f"Now · {SMOLLM2}")

    await on_console(web, scenario)

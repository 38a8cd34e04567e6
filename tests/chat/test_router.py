"""The model router over both real models in one service: a request's model by name or
alias, the tier's refusals, and fallback — while a model's worker restarts (the other
model answers, and says so), when it refuses admission, and never in mid-stream (a
stream that started on Gemma ends on Gemma, its tokens the same as an unbroken run)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from chorusline.chat import (
    AdmissionLimits,
    ChatRequest,
    ChatService,
    ChatSettings,
    EngineLike,
    Principal,
    TurnHandle,
    open_chat_service,
)
from chorusline.chat.loading import GEMMA3, SMOLLM2
from chorusline.protocols import (
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    SamplingParams,
)
from chorusline.ratelimit import Tiers
from chorusline.runtime import Engine, EngineConfig, LoadedModel
from chorusline.store import SqliteStore
from tests.chat.streams import read

pytestmark = pytest.mark.slow

CONFIG = EngineConfig(kv_cache_bytes=32 * 1024 * 1024, max_model_len=1024)
TIERS = Tiers.from_mapping({"default": "all", "tiers": {
    "all": {"requests_per_minute": 1000, "tokens_per_minute": 10_000_000,
            "max_concurrent_streams": 16, "priority": 1},
    "fast": {"requests_per_minute": 1000, "tokens_per_minute": 10_000_000,
             "max_concurrent_streams": 16, "priority": 1, "models": ["fast"]},
}})
GREEDY = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)


class HeldRestarts:
    """Gemma's engine factory: the first engine at once, every later one (a restart)
    only once ``release`` is set, so "the worker is restarting" lasts as long as a test
    needs it to."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.calls = 0
        self.building = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> EngineLike:
        self.calls += 1
        if self.calls > 1:
            self.building.set()
            self.release.wait(timeout=120)  # bounded: a failing test must not hang
        return Engine(self.model, CONFIG)


class HeldSteps:
    """Gemma's engine whose steps wait for ``gate``: its queue stays full on demand."""

    def __init__(self, engine: Engine, gate: threading.Event, entered: threading.Event
                 ) -> None:
        self.engine, self.gate, self.entered = engine, gate, entered

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def step(self) -> Any:
        self.entered.set()
        self.gate.wait(timeout=120)
        return self.engine.step()


@dataclass
class Served:
    chat: ChatService
    principal: Principal
    fast: Principal


@asynccontextmanager
async def two_models(chat_model: LoadedModel, gemma_model: LoadedModel, tmp_path: Path,
                     gemma_engine: Any, limits: AdmissionLimits | None = None
                     ) -> AsyncIterator[Served]:
    settings = ChatSettings(engine=CONFIG, tiers=TIERS, auto_titles=False,
                            **({} if limits is None else {"limits": limits}))
    store = SqliteStore(tmp_path / "chat.db")
    async with open_chat_service(settings, model={SMOLLM2: chat_model, GEMMA3: gemma_model},
                                 store=store, make_engine={GEMMA3: gemma_engine}) as chat:
        user = store.create_user("ada")

        async def principal(tier: str) -> Principal:
            return await chat.authenticate(store.create_api_key(user.id, tier=tier).plaintext)

        yield Served(chat, await principal("all"), await principal("fast"))


def completion(model: str | None, prompt: str = "The capital of France is") -> ChatRequest:
    return ChatRequest(params=GREEDY, prompt=prompt, model=model)


async def text_of(handle: TurnHandle) -> str:
    text, _finish = await read(handle)
    return text


async def test_names_aliases_tiers_and_capabilities_decide_the_model(
        chat_model: LoadedModel, gemma_model: LoadedModel, tmp_path: Path) -> None:
    async with two_models(chat_model, gemma_model, tmp_path,
                          lambda: Engine(gemma_model, CONFIG)) as served:
        chat, ada = served.chat, served.principal
        assert [m.name for m in chat.models] == [SMOLLM2, GEMMA3]
        gemma = await chat.chat(ada, completion(GEMMA3))
        assert (gemma.model, gemma.fallback_from) == (GEMMA3, None)
        assert await text_of(gemma)
        for name in (None, "default", "fast", SMOLLM2):
            handle = await chat.chat(ada, ChatRequest(
                params=GREEDY, messages=(("user", "Hi"),), model=name))
            assert handle.model == SMOLLM2
            await read(handle)
        with pytest.raises(InvalidRequest, match="base model"):
            await chat.chat(ada, ChatRequest(params=GREEDY, messages=(("user", "Hi"),),
                                             model=GEMMA3))
        with pytest.raises(ModelNotFound):
            await chat.chat(ada, completion("gpt-9"))
        with pytest.raises(PermissionDenied):
            await chat.chat(served.fast, completion(GEMMA3))
        assert (await chat.chat(served.fast, completion("fast"))).model == SMOLLM2
        tree = chat.admin.snapshot()["tree"]
        engines = next(c for c in next(c for c in tree["children"] if c["name"] == "chat")
                       ["children"] if c["name"] == "engines")
        assert {c["name"]: sorted(g["name"] for g in c["children"])
                for c in engines["children"]} == {
            SMOLLM2: ["driver", "gpu-worker"], GEMMA3: ["driver", "gpu-worker"]}
        assert (await chat.admin.engine_stats(GEMMA3))["engine"]["kv_blocks_total"] > 0


async def test_a_restarting_model_hands_new_turns_to_its_fallback_and_keeps_its_stream(
        chat_model: LoadedModel, gemma_model: LoadedModel, tmp_path: Path) -> None:
    restarts = HeldRestarts(gemma_model)
    async with two_models(chat_model, gemma_model, tmp_path, restarts) as served:
        chat, ada = served.chat, served.principal
        long = ChatRequest(params=SamplingParams(temperature=0.0, max_tokens=40,
                                                 ignore_eos=True),
                           prompt="Once upon a time", model=GEMMA3)
        unbroken = await text_of(await chat.chat(ada, long))
        with trio.fail_after(300):  # hang guard
            streaming = await chat.chat(ada, long)
            first = await streaming.stream.next()
            assert first and streaming.model == GEMMA3
            assert chat.admin.kill_gpu_worker(GEMMA3)
            await trio.to_thread.run_sync(restarts.building.wait)
            # Gemma's worker is being rebuilt: a new turn for it goes to SmolLM2 at once.
            swapped = await chat.chat(ada, completion(GEMMA3))
            assert (swapped.model, swapped.fallback_from) == (SMOLLM2, GEMMA3)
            assert await text_of(swapped)
            restarts.release.set()
            rest, finish = await read(streaming)
        # The stream never changed model: the requeued continuation on the new Gemma
        # worker gives exactly the tokens an unbroken run gives.
        assert finish == "length"
        assert "".join(chunk.text for chunk in first) + rest == unbroken
        back = await chat.chat(ada, completion(GEMMA3))
        assert (back.model, back.fallback_from) == (GEMMA3, None)
        await read(back)
        router = chat.admin.detail("/chat/router")
        assert {"from": GEMMA3, "to": SMOLLM2, "count": 1} in router["node"]["fallbacks"]


async def test_an_overloaded_model_hands_new_turns_to_its_fallback(
        chat_model: LoadedModel, gemma_model: LoadedModel, tmp_path: Path) -> None:
    gate, entered = threading.Event(), threading.Event()
    held = lambda: HeldSteps(Engine(gemma_model, CONFIG), gate, entered)  # noqa: E731
    async with two_models(chat_model, gemma_model, tmp_path, held,
                          AdmissionLimits(max_waiting_requests=1)) as served:
        chat, ada = served.chat, served.principal
        try:
            with trio.fail_after(300):
                waiting = await chat.chat(ada, completion(GEMMA3))  # held: Gemma is full
                await trio.to_thread.run_sync(entered.wait)
                refused_here = await chat.chat(ada, completion(GEMMA3))
                assert (refused_here.model, refused_here.fallback_from) == (SMOLLM2, GEMMA3)
                assert await text_of(refused_here)
                # Token ids are Gemma's own: such a turn is refused, never sent elsewhere.
                with pytest.raises(Overloaded):
                    await chat.chat(ada, ChatRequest(params=GREEDY, prompt=(2, 818, 5279),
                                                     model=GEMMA3))
                gate.set()
                assert await text_of(waiting)
                assert waiting.model == GEMMA3
        finally:
            gate.set()


async def test_a_model_that_gives_up_is_restarted_alone_and_its_turns_fall_back(
        chat_model: LoadedModel, gemma_model: LoadedModel, tmp_path: Path) -> None:
    """Gemma's worker killed past its subtree's intensity: /chat/engines restarts Gemma's
    subtree whole, SmolLM2's stream runs through it untouched, and while Gemma's new
    worker is held its completions go to SmolLM2."""
    restarts = HeldRestarts(gemma_model)
    restarts.release.set()  # the first restarts go through at once
    async with two_models(chat_model, gemma_model, tmp_path, restarts) as served:
        chat, ada = served.chat, served.principal
        registry = chat.system.registry
        gemma, smollm = chat.deps.models[GEMMA3], chat.deps.models[SMOLLM2]
        smollm_worker = registry.lookup(smollm.worker_key)
        with trio.fail_after(600):  # hang guard
            streaming = await chat.chat(ada, ChatRequest(
                params=SamplingParams(temperature=0.0, max_tokens=64, ignore_eos=True),
                messages=(("user", "Count to twenty."),)))
            assert await streaming.stream.next()
            for kill in range(6):  # the subtree allows 5 restarts in 60 s
                worker = await registry.wait_for(gemma.worker_key)
                if kill == 5:
                    restarts.release.clear()  # the rebuilt subtree's worker is held
                    restarts.building.clear()
                assert chat.admin.kill_gpu_worker(GEMMA3)
                await worker.join()
            await trio.to_thread.run_sync(restarts.building.wait)
            escalated = [e for e in chat.system.recorder.events if e.kind == "escalated"]
            assert [(e.path, e.detail["child"]) for e in escalated] == [
                (f"/chat/engines/{GEMMA3}", "gpu-worker")]
            swapped = await chat.chat(ada, completion(GEMMA3))
            assert (swapped.model, swapped.fallback_from) == (SMOLLM2, GEMMA3)
            await read(swapped)
            restarts.release.set()
            _, finish = await read(streaming)
            assert finish == "length"  # SmolLM2's stream never noticed
            assert registry.lookup(smollm.worker_key) is smollm_worker
            await registry.wait_for(gemma.worker_key)
            back = await chat.chat(ada, completion(GEMMA3))
            assert back.model == GEMMA3
            await read(back)

"""The turn runner: prompt preparation runs off the event loop, with the reply budget
made explicit, and the one GenerationRequest carries the turn's id and deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from chorusline.chat import ChatRequest, ChatSettings, TurnHandle, open_chat_service
from chorusline.chat.deps import ChatDeps
from chorusline.chat.principal import Principal
from chorusline.chat.runner import check_input, generation, prepare
from chorusline.chat.served import ServedModel, ServedModels
from chorusline.moderation import Moderator
from chorusline.protocols import ContextTooLong, SamplingParams
from chorusline.ratelimit import Tiers
from chorusline.runtime import EngineConfig, LoadedModel
from chorusline.store import SqliteStore
from tests.chat.streams import read
from tests.chat.tokenizers import SpyTokenizer

GREEDY = SamplingParams(temperature=0.0, max_tokens=8)
LONG = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)


@pytest.fixture
def deps(chat_model: LoadedModel) -> Iterator[ChatDeps]:
    store = SqliteStore(":memory:")
    model = ServedModel("m", SpyTokenizer(chat_model), chat_model.chat_template,
                        context_window=2048, vocab_size=chat_model.config.vocab_size)
    yield ChatDeps(store=store, models=ServedModels([model]), moderator=Moderator(),
                   default_reply_budget=64)
    store.close()


async def test_a_long_prompt_is_prepared_on_a_worker_thread(deps: ChatDeps) -> None:
    prompt = await prepare(deps, deps.models["m"],
                           [{"role": "user", "content": "Hello there, friend. " * 300}],
                           "Be brief.", SamplingParams())
    assert prompt.prompt_token_ids
    tokenizer = deps.models["m"].tokenizer
    assert isinstance(tokenizer, SpyTokenizer)
    assert tokenizer.threads and threading.get_ident() not in tokenizer.threads


async def test_a_short_prompt_is_prepared_inline(deps: ChatDeps) -> None:
    # Under a millisecond of work: cheaper than the hop to a thread and back.
    await prepare(deps, deps.models["m"], [{"role": "user", "content": "Hello!"}], None,
                  SamplingParams())
    tokenizer = deps.models["m"].tokenizer
    assert isinstance(tokenizer, SpyTokenizer)
    assert tokenizer.threads == {threading.get_ident()}


async def test_input_moderation_runs_on_a_worker_thread(deps: ChatDeps) -> None:
    seen: list[int] = []
    inner = deps.moderator.check_input

    def check(text: str) -> object:
        seen.append(threading.get_ident())
        return inner(text)

    deps.moderator.check_input = check  # type: ignore[method-assign,assignment]
    assert not (await check_input(deps, "hello " * 10_000)).blocked
    assert seen and threading.get_ident() not in seen


async def test_the_engine_request_carries_the_turns_id_budget_and_deadline(
    deps: ChatDeps,
) -> None:
    principal = Principal("user-1", "key-1", Tiers.defaults().get("plus"))
    model = deps.models["m"]
    prompt = await prepare(deps, model, [{"role": "user", "content": "Hi"}], None,
                           SamplingParams())
    before = time.monotonic()
    request = generation(deps, model, principal, "chatcmpl-x", prompt, SamplingParams())
    assert request.request_id == "chatcmpl-x"
    assert request.prompt_token_ids == prompt.prompt_token_ids
    assert request.params.max_tokens == 64  # the default reply budget, made explicit
    assert request.tenant == "user-1" and request.priority == principal.tier.priority
    assert request.deadline is not None
    assert before + deps.max_turn_seconds <= request.deadline


async def test_an_unnamed_budget_leaves_room_in_a_small_window(deps: ChatDeps) -> None:
    # A KV cache that allows only 100 tokens of context: the default (64 here, 512 as
    # shipped) is capped at half the window instead of refusing every turn.
    small = replace(deps, default_reply_budget=512)
    model = replace(deps.models["m"], context_window=100)
    prompt = await prepare(small, model, [{"role": "user", "content": "Hi"}], None,
                           SamplingParams())
    assert prompt.prompt_token_ids
    request = generation(small, model, Principal("u", "k", Tiers.defaults().get("plus")),
                         "c", prompt, SamplingParams())
    assert request.params.max_tokens == 50
    with pytest.raises(ContextTooLong):  # a budget the caller names is still held to
        await prepare(small, model, [{"role": "user", "content": "Hi"}], None,
                      SamplingParams(max_tokens=100))


class GatedTokenizer(SpyTokenizer):
    """Holds every long encoding until ``gate`` is set: a prompt whose preparation takes
    as long as the test wants."""

    def __init__(self, model: LoadedModel, gate: threading.Event) -> None:
        super().__init__(model)
        self.gate = gate
        self.held = threading.Event()

    def encode(self, text: str, *, allow_special: bool = False) -> list[int]:
        if len(text) > 20_000:
            self.held.set()
            assert self.gate.wait(600)
        return super().encode(text, allow_special=allow_special)


async def test_a_prompt_being_prepared_holds_up_no_other_key_s_turn(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    gate = threading.Event()
    tokenizer = GatedTokenizer(chat_model, gate)
    model = replace(chat_model, tokenizer=tokenizer)  # type: ignore[arg-type]
    store = SqliteStore(tmp_path / "chat.db")
    # Room in the KV cache for a whole window: the big prompt fills it.
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=128 * 1024 * 1024))
    async with open_chat_service(settings, model=model, store=store) as chat:
        async def principal(name: str) -> Principal:
            user = store.create_user(name)
            return await chat.authenticate(store.create_api_key(user.id).plaintext)

        ada, bob, cy = await principal("ada"), await principal("bob"), await principal("cy")
        history = tuple(("user" if i % 2 == 0 else "assistant", f"old turn {i} " * 40)
                        for i in range(200))  # ~100 kB: a long preparation
        big: list[TurnHandle] = []

        async def ask_big() -> None:
            big.append(await chat.chat(bob, ChatRequest(GREEDY, messages=history,
                                                        truncate=True)))

        with trio.fail_after(600):  # a hang guard: this deadlocks if preparing blocks
            streaming = await chat.chat(ada, ChatRequest(LONG, messages=(
                ("user", "Count slowly."),)))
            assert await streaming.stream.next()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask_big)
                await trio.to_thread.run_sync(tokenizer.held.wait)  # bob's is mid-prepare
                # While it is, ada's reply streams on to its end and cy's turn runs.
                assert (await read(streaming))[1] == "length"
                fresh = await chat.chat(cy, ChatRequest(GREEDY, messages=(
                    ("user", "Say hi."),)))
                text, finish = await read(fresh)
                assert text and finish in ("stop", "length") and not big
                gate.set()
            assert (await read(big[0]))[1] in ("stop", "length")

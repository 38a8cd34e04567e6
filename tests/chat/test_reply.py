"""Stateless replies go through output moderation as they stream (real model, real store).

The classifiers here are test classifiers plugged in through the public ``Moderator``
interface, so that what the real model says (greedy, but not chosen by the test) is sure
to trigger them: the thing under test is the relay, not the built-in rules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from chorusline.chat import ChatRequest, ChatService, ChatSettings, Principal, open_chat_service
from chorusline.moderation import Action, Finding, Moderator, Policy, Stage
from chorusline.protocols import SamplingParams
from chorusline.runtime import EngineConfig, LoadedModel
from chorusline.store import ModerationStage, SqliteStore
from tests.chat.streams import read
from tests.chat.test_service_faults import engine_stats

GREEDY = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)
QUESTION = (("user", "Tell me about the sea."),)


class LetterE:
    """Flags every "e" (window 1) as the "letter" category."""

    window = 1

    def classify(self, text: str) -> list[Finding]:
        return [Finding("letter", 1.0, (i, i + 1), "e") for i, c in enumerate(text) if c == "e"]


def moderating(action: Action) -> Moderator:
    """"e" gets ``action`` in replies (and the default for unknown categories, a flag, in
    the user's message, which therefore goes through)."""
    return Moderator(Policy().with_action(Stage.OUTPUT, "letter", action), [LetterE()])


@asynccontextmanager
async def served(model: LoadedModel, tmp_path: Path, moderator: Moderator
                 ) -> AsyncIterator[tuple[ChatService, SqliteStore, Principal]]:
    store = SqliteStore(tmp_path / "chat.db")
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=64 * 1024 * 1024))
    async with open_chat_service(settings, model=model, store=store,
                                 moderator=moderator) as chat:
        user = store.create_user("ada")
        principal = await chat.authenticate(store.create_api_key(user.id).plaintext)
        yield chat, store, principal


async def test_a_stateless_reply_is_redacted_as_it_streams(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with served(chat_model, tmp_path, moderating(Action.REDACT)) as (chat, _store, who):
        handle = await chat.chat(who, ChatRequest(GREEDY, messages=QUESTION))
        with trio.fail_after(600):
            text, finish = await read(handle)
    assert finish == "length"
    assert "[REDACTED:letter]" in text
    assert "e" not in text.replace("[REDACTED:letter]", "")
    assert "t" in text  # the rest of the reply did get through


async def test_a_blocked_stateless_reply_ends_with_content_filter_and_is_recorded(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    moderator = moderating(Action.BLOCK)
    async with served(chat_model, tmp_path, moderator) as (chat, store, who):
        handle = await chat.chat(who, ChatRequest(GREEDY, messages=QUESTION))
        with trio.fail_after(600):
            text, finish = await read(handle)
            # The engine request was aborted at the block, not run to max_tokens.
            stats = await engine_stats(chat)
            while stats.num_running:
                stats = await engine_stats(chat)  # answered between steps: no sleep
        events = await chat.db(store.list_moderation)
    assert finish == "content_filter"
    assert "e" not in text.replace(moderator.policy.refusal_for(["letter"]), "")
    assert [(e.stage, e.category, e.action, e.conversation_id) for e in events][:1] == [
        (ModerationStage.OUTPUT, "letter", "block", None)
    ]
    assert stats.kv_blocks_used == 0


async def test_closing_a_moderated_stream_aborts_the_engine_request(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with served(chat_model, tmp_path, Moderator()) as (chat, _store, who):
        params = SamplingParams(temperature=0.0, max_tokens=400, ignore_eos=True)
        handle = await chat.chat(who, ChatRequest(params, messages=QUESTION))
        with trio.fail_after(600):
            await handle.stream.next()  # the reply is under way
            handle.stream.close()
            stats = await engine_stats(chat)
            while stats.num_running or stats.kv_blocks_used:
                stats = await engine_stats(chat)
    assert stats.generated_tokens < 400

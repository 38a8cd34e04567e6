"""The plugin's fixtures, used as an embedding app's tests would: no conftest, no import
(``tests/testing/conftest.py`` only shares the suite's model with ``chat_service``)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from chorusline.actors import ActorSpec, ActorSystem, SyncActor
from chorusline.chat import ChatRequest, ChatService
from chorusline.protocols import SamplingParams, ServiceUnavailable
from chorusline.store import MessageStatus, Role
from chorusline.testing import crash
from tests.chat.streams import read

GREEDY = SamplingParams(temperature=0.0, max_tokens=8)


class Echo(SyncActor):
    def handle(self, message: Any) -> Any:
        return message


async def test_actor_system_is_open_for_the_test(actor_system: ActorSystem) -> None:
    echo = await actor_system.spawn(ActorSpec(Echo, name="echo"))
    assert await echo.ask("hi") == "hi"
    assert actor_system.lookup("/echo") == echo


async def test_chat_service_answers_the_retry_of_a_turn_a_conversation_crash_refused(
    chat_service: ChatService, actor_system: ActorSystem
) -> None:
    chat = chat_service
    assert chat.system is actor_system  # the chat tree runs in the test's system
    user = await chat.accounts.create_user("ada")
    principal = await chat.authenticate((await chat.accounts.create_api_key(user.id)).plaintext)
    conversation = await chat.conversations.create(principal, title="t")
    request = ChatRequest(GREEDY, conversation.id, "Name a colour.", idempotency_key="k-1")
    # The conversation actor crashes on the turn, before storing anything: the caller is
    # told to retry (ServiceUnavailable), and the one-shot crash is consumed.
    with crash(chat, "/chat/conversations/*", nth=1):
        with pytest.raises(ServiceUnavailable):
            await chat.chat(principal, request)
        assert chat.system.faults.active() == {}
    crashed = [e.path for e in chat.system.recorder.events if e.kind == "actor_crashed"]
    assert f"/chat/conversations/conv-{conversation.id}" in crashed
    with trio.fail_after(300):  # a hang guard: the conversation actor restarts
        handle = await chat.chat(principal, request)
        text, finish = await read(handle)
        await handle.persisted.wait()
    assert not handle.replayed and finish in ("stop", "length") and text
    messages = await chat.conversations.messages(principal, conversation.id)
    assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT]
    assert messages[1].status is MessageStatus.COMPLETE and messages[1].content == text

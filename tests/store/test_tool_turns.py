"""Tool calls and tool-result turns in the store, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from chorusline.protocols import ChatMessage, InvalidRequest, ToolCall
from chorusline.store import Conversation, Message, MessageStatus, Role, Store, User

CALLS = (ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
         ToolCall("call_b", "get_time", '{"zone":  "CET"}'))


@pytest.fixture
def alice(store: Store) -> User:
    return store.create_user("alice")


@pytest.fixture
def convo(store: Store, alice: User) -> Conversation:
    return store.create_conversation(alice.id, title="weather")


def asked(store: Store, alice: User, convo: Conversation,
          calls: tuple[ToolCall, ...] = CALLS) -> Message:
    """A user turn and a complete reply that made ``calls``."""
    store.begin_turn(alice.id, convo.id, "ask", content="Weather and time in Paris?")
    draft, _ = store.claim_reply(alice.id, "ask")
    store.update_draft(convo.id, draft.id, "Let me look.", tool_calls=calls[:1])
    return store.finalize_message(convo.id, draft.id, status=MessageStatus.COMPLETE,
                                  finish_reason="tool_calls", tool_calls=calls)


def results(*ids: str) -> list[ChatMessage]:
    return [ChatMessage("tool", f"result of {i}", tool_call_id=i) for i in ids]


def test_calls_and_results_are_kept_in_order_and_read_back(
    store: Store, alice: User, convo: Conversation
) -> None:
    reply = asked(store, alice, convo)
    assert reply.tool_calls == CALLS and reply.content == "Let me look."
    turn = store.begin_tool_turn(alice.id, convo.id, "answer",
                                 results=results("call_a", "call_b"), request_id="r2")
    assert not turn.replayed
    tree = store.get_message_tree(alice.id, convo.id)
    assert [(m.role, m.tool_call_id) for m in tree] == [
        (Role.USER, None), (Role.ASSISTANT, None), (Role.TOOL, "call_a"), (Role.TOOL, "call_b")]
    # Each result is the child of the one before; the turn's message is the last.
    assert tree[2].parent_message_id == reply.id and tree[3].parent_message_id == tree[2].id
    assert turn.user_message == tree[3]
    assert tree[1].tool_calls == CALLS  # the arguments' text exactly as written
    # A reply to the results is claimed like any turn's.
    draft, made = store.claim_reply(alice.id, "answer")
    assert made and draft.parent_message_id == tree[3].id


def test_a_retry_replays_and_other_results_under_the_key_are_refused(
    store: Store, alice: User, convo: Conversation
) -> None:
    asked(store, alice, convo)
    first = store.begin_tool_turn(alice.id, convo.id, "k", results=results("call_a", "call_b"))
    again = store.begin_tool_turn(alice.id, convo.id, "k", results=results("call_a", "call_b"))
    assert again.replayed and again.user_message == first.user_message
    with pytest.raises(InvalidRequest, match="different request"):
        store.begin_tool_turn(alice.id, convo.id, "k", results=results("call_b", "call_a"))
    assert len(store.get_message_tree(alice.id, convo.id)) == 4


@pytest.mark.parametrize(("ids", "param"), [
    (("call_a", "call_x"), "tool_results[1].tool_call_id"),  # not a call of the reply
    (("call_a", "call_a"), "tool_results[1].tool_call_id"),  # answered twice
    (("call_a",), "tool_results"),  # call_b left unanswered
    ((), "tool_results"),
])
def test_results_must_answer_each_call_once(
    store: Store, alice: User, convo: Conversation, ids: tuple[str, ...], param: str
) -> None:
    asked(store, alice, convo)
    with pytest.raises(InvalidRequest) as refused:
        store.begin_tool_turn(alice.id, convo.id, "k", results=results(*ids))
    assert refused.value.param == param
    assert len(store.get_message_tree(alice.id, convo.id)) == 2  # nothing written
    # The key was not spent by the refusal: the right results go in under it.
    assert not store.begin_tool_turn(alice.id, convo.id, "k",
                                     results=results("call_a", "call_b")).replayed


def test_results_need_a_complete_reply_that_made_calls(
    store: Store, alice: User, convo: Conversation
) -> None:
    with pytest.raises(InvalidRequest, match="no tool calls"):
        store.begin_tool_turn(alice.id, convo.id, "k0", results=results("call_a"))
    store.begin_turn(alice.id, convo.id, "ask", content="hi")
    draft, _ = store.claim_reply(alice.id, "ask")
    store.update_draft(convo.id, draft.id, "", tool_calls=CALLS[:1])  # still streaming
    with pytest.raises(InvalidRequest, match="did not complete"):
        store.begin_tool_turn(alice.id, convo.id, "k1", results=results("call_a"),
                              parent=draft.id)  # an open draft, its calls unfinished
    store.finalize_message(convo.id, draft.id, status=MessageStatus.COMPLETE,
                           finish_reason="stop", content="Hello!", tool_calls=())
    with pytest.raises(InvalidRequest, match="made tool calls"):
        store.begin_tool_turn(alice.id, convo.id, "k2", results=results("call_a"))
    with pytest.raises(InvalidRequest) as refused:
        store.begin_tool_turn(alice.id, convo.id, "k3",
                              results=[ChatMessage("user", "not a result")])
    assert refused.value.param == "tool_results[0]"


def test_calls_only_on_assistant_messages_and_ids_only_on_tool_ones(
    store: Store, alice: User, convo: Conversation
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        store.append_message(alice.id, convo.id, role=Role.USER, content="x", tool_calls=CALLS)
    assert refused.value.param == "tool_calls"
    with pytest.raises(InvalidRequest) as refused:
        store.append_message(alice.id, convo.id, role=Role.TOOL, content="x")
    assert refused.value.param == "tool_call_id"
    with pytest.raises(InvalidRequest, match="two tool calls"):
        store.append_message(alice.id, convo.id, role=Role.ASSISTANT, content="",
                             tool_calls=(CALLS[0], CALLS[0]))


def test_export_share_and_branch_carry_the_calls(
    store: Store, alice: User, convo: Conversation
) -> None:
    asked(store, alice, convo)
    turn = store.begin_tool_turn(alice.id, convo.id, "k", results=results("call_a", "call_b"))
    exported = store.export_conversation(alice.id, convo.id)["messages"]
    assert exported[1]["tool_calls"] == [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in CALLS]
    assert [m["tool_call_id"] for m in exported] == [None, None, "call_a", "call_b"]
    shared = store.share_conversation(alice.id, convo.id).messages
    assert shared[1].tool_calls == CALLS and shared[3].tool_call_id == "call_b"
    copy = store.branch_to_new_conversation(alice.id, convo.id, turn.user_message.id)
    branch = store.get_message_tree(alice.id, copy.id)
    assert branch[1].tool_calls == CALLS
    assert [m.tool_call_id for m in branch[2:]] == ["call_a", "call_b"]

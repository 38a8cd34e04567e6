"""Feedback on assistant messages, on SQLite and PostgreSQL alike: one rating per
message, replaced when given again, only on assistant messages, only by the owner, and
exported with the conversation."""

from __future__ import annotations

import pytest

from chorusline.protocols import InvalidRequest, NotFound
from chorusline.store import Conversation, Rating, Role, Store, User


@pytest.fixture
def alice(store: Store) -> User:
    return store.create_user("alice")


@pytest.fixture
def convo(store: Store, alice: User) -> Conversation:
    return store.create_conversation(alice.id, title="t")


def test_a_rating_is_set_replaced_listed_exported_and_removed(
        store: Store, alice: User, convo: Conversation) -> None:
    question = store.append_message(alice.id, convo.id, role=Role.USER, content="q")
    answer = store.append_message(alice.id, convo.id, role=Role.ASSISTANT, content="a")
    first = store.set_feedback(alice.id, convo.id, answer.id, Rating.UP)
    assert (first.rating, first.comment, first.message_id) == (Rating.UP, None, answer.id)
    again = store.set_feedback(alice.id, convo.id, answer.id, Rating.DOWN, "made up a fact")
    assert (again.rating, again.comment) == (Rating.DOWN, "made up a fact")
    assert again.created == first.created and again.updated > first.updated
    assert store.list_feedback(alice.id, convo.id) == [again]
    exported = store.export_conversation(alice.id, convo.id)["feedback"]
    assert exported == [{"message_id": answer.id, "rating": "down",
                         "comment": "made up a fact", "created": first.created.isoformat(),
                         "updated": again.updated.isoformat()}]
    with pytest.raises(InvalidRequest):
        store.set_feedback(alice.id, convo.id, question.id, Rating.UP)
    assert store.delete_feedback(alice.id, convo.id, answer.id)
    assert not store.delete_feedback(alice.id, convo.id, answer.id)
    assert store.list_feedback(alice.id, convo.id) == []


def test_someone_elses_message_cannot_be_rated(store: Store, alice: User,
                                               convo: Conversation) -> None:
    answer = store.append_message(alice.id, convo.id, role=Role.ASSISTANT, content="a")
    mallory = store.create_user("mallory")
    for attempt in (lambda: store.set_feedback(mallory.id, convo.id, answer.id, Rating.UP),
                    lambda: store.delete_feedback(mallory.id, convo.id, answer.id),
                    lambda: store.list_feedback(mallory.id, convo.id)):
        with pytest.raises(NotFound):
            attempt()
    other = store.create_conversation(alice.id, title="other")
    with pytest.raises(NotFound):  # a message of another conversation
        store.set_feedback(alice.id, other.id, answer.id, Rating.UP)
    with pytest.raises(InvalidRequest):
        store.set_feedback(alice.id, convo.id, answer.id, Rating.UP, "x" * 10_001)
    assert store.list_feedback(alice.id, convo.id) == []

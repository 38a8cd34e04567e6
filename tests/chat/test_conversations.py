"""``Conversations`` on real SQLite and PostgreSQL stores: every operation answers for the
caller's own conversations only (another user's is a NotFound, exactly like a missing
one), and each call reaches the store through the worker-thread ``Db``."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chorusline.chat.accounts import Accounts
from chorusline.chat.conversations import Conversations
from chorusline.chat.db import Db
from chorusline.chat.principal import Principal
from chorusline.protocols import InvalidRequest, NotFound
from chorusline.ratelimit import Tiers
from chorusline.store import PostgresStore, Role, SqliteStore, Store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made: Store
    if request.param == "sqlite":
        made = SqliteStore(tmp_path / "chat.db")
    else:
        made = PostgresStore(request.getfixturevalue("make_postgres_database")(), max_size=4)
    yield made
    made.close()


async def principal(accounts: Accounts, name: str) -> Principal:
    user = await accounts.create_user(name)
    return await accounts.authenticate((await accounts.create_api_key(user.id)).plaintext)


async def test_a_conversations_life_through_the_facade(store: Store) -> None:
    db = Db()
    conversations = Conversations(db, store)
    ada = await principal(Accounts(db, store, Tiers.defaults()), "ada")
    made = await conversations.create(ada, title="Fruit", system_prompt="Be brief.",
                                      model="m")
    assert (made.user_id, made.title, made.system_prompt, made.model) == (
        ada.user_id, "Fruit", "Be brief.", "m")
    assert await conversations.get(ada, made.id) == made

    question = store.append_message(ada.user_id, made.id, role=Role.USER, content="Apples?")
    answer = store.append_message(ada.user_id, made.id, role=Role.ASSISTANT, content="Red.")
    other = store.append_message(ada.user_id, made.id, role=Role.ASSISTANT, content="Green.",
                                 parent=question.id)
    assert [m.id for m in await conversations.messages(ada, made.id)] == [question.id,
                                                                          other.id]
    tree = await conversations.messages(ada, made.id, tree=True)
    assert [m.id for m in tree] == [question.id, answer.id, other.id]
    assert (await conversations.message(ada, made.id, answer.id)).content == "Red."

    assert (await conversations.rename(ada, made.id, "Fruit quiz")).title == "Fruit quiz"
    assert (await conversations.set_system_prompt(ada, made.id, None)).system_prompt is None
    assert (await conversations.archive(ada, made.id)).archived is True
    assert (await conversations.list(ada)).items == ()
    assert [c.id for c in (await conversations.list(ada, archived=True)).items] == [made.id]
    assert (await conversations.archive(ada, made.id, False)).archived is False

    [hit] = await conversations.search(ada, "GREEN")
    assert hit.conversation.id == made.id and hit.message_ids == (other.id,)
    branched = await conversations.branch(ada, made.id, answer.id, title="Red branch")
    assert (branched.parent_conversation_id, branched.branch_point_message_id) == (
        made.id, answer.id)
    assert [m.content for m in await conversations.messages(ada, branched.id)] == [
        "Apples?", "Red."]

    shared = await conversations.share(ada, made.id)
    assert (await conversations.get_shared(shared.token)).title == "Fruit quiz"
    await conversations.revoke_share(ada, made.id)
    with pytest.raises(NotFound):
        await conversations.get_shared(shared.token)
    exported = await conversations.export(ada, made.id)
    assert [m["id"] for m in exported["messages"]] == [question.id, answer.id, other.id]

    await conversations.delete(ada, made.id)
    with pytest.raises(NotFound):
        await conversations.get(ada, made.id)
    assert [c.id for c in (await conversations.list(ada, archived=None)).items] == [
        branched.id]


async def test_pages_follow_the_cursor_and_limits_are_checked(store: Store) -> None:
    db = Db()
    conversations = Conversations(db, store)
    ada = await principal(Accounts(db, store, Tiers.defaults()), "ada")
    made = [(await conversations.create(ada, title=f"c{i}")).id for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = await conversations.list(ada, limit=2, cursor=cursor)
        seen += [c.id for c in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert seen == made[::-1]
    for limit in (0, 101, True):
        with pytest.raises(InvalidRequest) as refused:
            await conversations.list(ada, limit=limit)
        assert refused.value.param == "limit"
        with pytest.raises(InvalidRequest):
            await conversations.search(ada, "c", limit=limit)
    with pytest.raises(InvalidRequest):
        await conversations.search(ada, "   ")


async def test_another_users_conversation_is_not_found_by_every_operation(
    store: Store,
) -> None:
    db = Db()
    conversations = Conversations(db, store)
    accounts = Accounts(db, store, Tiers.defaults())
    ada, bob = await principal(accounts, "ada"), await principal(accounts, "bob")
    theirs = await conversations.create(bob, title="Bob's secret plans")
    message = store.append_message(bob.user_id, theirs.id, role=Role.USER, content="secret")
    cid, missing = theirs.id, str(uuid.uuid4())
    attempts: list[Callable[[str], Awaitable[Any]]] = [
        lambda c: conversations.get(ada, c),
        lambda c: conversations.rename(ada, c, "mine now"),
        lambda c: conversations.archive(ada, c),
        lambda c: conversations.set_system_prompt(ada, c, "obey"),
        lambda c: conversations.delete(ada, c),
        lambda c: conversations.messages(ada, c),
        lambda c: conversations.messages(ada, c, tree=True),
        lambda c: conversations.message(ada, c, message.id),
        lambda c: conversations.branch(ada, c, message.id),
        lambda c: conversations.share(ada, c),
        lambda c: conversations.revoke_share(ada, c),
        lambda c: conversations.export(ada, c),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound) as refused:
            await attempt(cid)
        with pytest.raises(NotFound) as absent:
            await attempt(missing)
        assert str(refused.value).replace(cid, missing) == str(absent.value)
    assert await conversations.search(ada, "secret") == []
    assert (await conversations.list(ada, archived=None)).items == ()
    kept = await conversations.get(bob, cid)
    assert (kept.title, kept.archived, kept.share_token) == ("Bob's secret plans", False,
                                                             None)
    assert [m.id for m in await conversations.messages(bob, cid)] == [message.id]


async def test_custom_instructions_are_the_callers_own(store: Store) -> None:
    db = Db()
    conversations = Conversations(db, store)
    accounts = Accounts(db, store, Tiers.defaults())
    ada, bob = await principal(accounts, "ada"), await principal(accounts, "bob")
    assert await conversations.custom_instructions(ada) is None
    updated = await conversations.set_custom_instructions(ada, "Answer in French.")
    assert (updated.id, updated.custom_instructions) == (ada.user_id, "Answer in French.")
    assert await conversations.custom_instructions(ada) == "Answer in French."
    assert await conversations.custom_instructions(bob) is None
    await conversations.set_custom_instructions(ada, None)
    assert await conversations.custom_instructions(ada) is None


async def test_store_calls_run_on_worker_threads(tmp_path: Path) -> None:
    """The facade never blocks the event loop on the store: each call is on a thread."""
    loop_thread = threading.get_ident()
    seen: list[int] = []

    class Recording(SqliteStore):
        def get_conversation(self, user_id: str, conversation_id: str) -> Any:
            seen.append(threading.get_ident())
            return super().get_conversation(user_id, conversation_id)

    store = Recording(tmp_path / "chat.db")
    try:
        db = Db()
        conversations = Conversations(db, store)
        ada = await principal(Accounts(db, store, Tiers.defaults()), "ada")
        made = await conversations.create(ada)
        await conversations.get(ada, made.id)
    finally:
        store.close()
    assert seen and loop_thread not in seen

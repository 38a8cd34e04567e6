"""The Store contract, run unchanged against SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import pytest

from chorusline.protocols.errors import InvalidRequest, NotFound
from chorusline.store import (
    ACTIVE_LEAF,
    Conversation,
    MessageStatus,
    ModerationStage,
    Role,
    Store,
    StoreUnavailable,
    User,
)

T = TypeVar("T")


def run_threads(n: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(i)`` on ``n`` threads released together; re-raise any failure."""
    barrier = threading.Barrier(n)
    results: list[T | None] = [None] * n
    errors: list[BaseException] = []

    def target(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


@pytest.fixture
def alice(store: Store) -> User:
    return store.create_user("alice")


@pytest.fixture
def bob(store: Store) -> User:
    return store.create_user("bob")


@pytest.fixture
def convo(store: Store, alice: User) -> Conversation:
    return store.create_conversation(alice.id, title="Trip to Lisbon", model="tiny")


# -- users and keys ------------------------------------------------------------------


def test_users_round_trip_and_custom_instructions(store: Store, alice: User) -> None:
    assert store.get_user(alice.id) == alice
    updated = store.set_custom_instructions(alice.id, "answer briefly")
    assert (
        store.get_user(alice.id).custom_instructions
        == "answer briefly"
        == (updated.custom_instructions)
    )
    with pytest.raises(NotFound):
        store.get_user("nobody")
    with pytest.raises(InvalidRequest):
        store.create_user("")


def test_api_key_is_stored_only_as_a_hash(store: Store, alice: User) -> None:
    issued = store.create_api_key(alice.id, tier="pro", is_admin=True)
    assert issued.plaintext.startswith(issued.key.prefix)
    with store._transaction() as tx:  # type: ignore[attr-defined]
        rows = tx.fetchall("SELECT * FROM api_keys")
    stored = [str(v) for row in rows for v in row.values()]
    assert not any(issued.plaintext in value for value in stored)
    assert hashlib.sha256(issued.plaintext.encode()).hexdigest() in stored
    key = store.authenticate_api_key(issued.plaintext)
    assert key is not None and key.user_id == alice.id and key.tier == "pro" and key.is_admin


def test_list_users_oldest_first(store: Store) -> None:
    assert store.list_users() == []
    first = store.create_user("carol")
    second = store.create_user("carol", custom_instructions="be brief")
    assert store.list_users() == [first, second]


def test_api_key_lookup_rejects_wrong_secret_and_revoked_keys(
    store: Store, alice: User, bob: User
) -> None:
    issued = store.create_api_key(alice.id)
    other = store.create_api_key(alice.id)
    assert store.authenticate_api_key(issued.plaintext[:-1] + "x") is None
    assert store.authenticate_api_key("ck_000000000000_nope") is None
    assert store.authenticate_api_key("garbage") is None
    with pytest.raises(NotFound):
        store.revoke_api_key(bob.id, issued.key.id)
    revoked = store.revoke_api_key(alice.id, issued.key.id)
    assert revoked.revoked_at is not None
    assert store.revoke_api_key(alice.id, issued.key.id).revoked_at == revoked.revoked_at
    assert store.authenticate_api_key(issued.plaintext) is None
    assert store.authenticate_api_key(other.plaintext) is not None
    assert [k.id for k in store.list_api_keys(alice.id)] == [issued.key.id, other.key.id]
    assert store.list_api_keys(bob.id) == []


# -- conversations -------------------------------------------------------------------


def test_conversations_are_private_to_their_owner(
    store: Store, alice: User, bob: User, convo: Conversation
) -> None:
    assert store.get_conversation(alice.id, convo.id) == convo
    for call in (
        lambda: store.get_conversation(bob.id, convo.id),
        lambda: store.rename_conversation(bob.id, convo.id, "mine"),
        lambda: store.append_message(bob.id, convo.id, role=Role.USER, content="hi"),
        lambda: store.get_active_branch(bob.id, convo.id),
        lambda: store.share_conversation(bob.id, convo.id),
        lambda: store.export_conversation(bob.id, convo.id),
        lambda: store.delete_conversation(bob.id, convo.id),
        lambda: store.begin_turn(bob.id, convo.id, "k", content="hi"),
    ):
        with pytest.raises(NotFound):
            call()
    assert store.list_conversations(bob.id).items == ()
    with pytest.raises(NotFound):
        store.create_conversation("nobody")


def test_list_is_newest_first_and_paginates_without_gaps(store: Store, alice: User) -> None:
    made = [store.create_conversation(alice.id, title=f"c{i}") for i in range(7)]
    store.append_message(alice.id, made[2].id, role=Role.USER, content="bump")
    expected = [made[2].id] + [c.id for c in reversed(made) if c is not made[2]]
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_conversations(alice.id, limit=3, cursor=cursor)
        seen += [c.id for c in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        store.create_conversation(alice.id, title="created while paging")
    assert seen == expected
    with pytest.raises(InvalidRequest):
        store.list_conversations(alice.id, cursor="not-a-cursor")
    with pytest.raises(InvalidRequest):
        store.list_conversations(alice.id, limit=0)


def test_archive_rename_system_prompt_and_filters(
    store: Store, alice: User, convo: Conversation
) -> None:
    other = store.create_conversation(alice.id, title="other")
    archived = store.set_archived(alice.id, convo.id, True)
    assert archived.archived and archived.updated > convo.updated
    assert [c.id for c in store.list_conversations(alice.id).items] == [other.id]
    assert [c.id for c in store.list_conversations(alice.id, archived=True).items] == [convo.id]
    assert len(store.list_conversations(alice.id, archived=None).items) == 2
    assert not store.set_archived(alice.id, convo.id, False).archived
    assert store.rename_conversation(alice.id, convo.id, "Porto").title == "Porto"
    assert store.set_system_prompt(alice.id, convo.id, "be terse").system_prompt == "be terse"
    assert store.get_conversation(alice.id, convo.id).title == "Porto"


def test_soft_delete_hides_everywhere(store: Store, alice: User, convo: Conversation) -> None:
    store.append_message(alice.id, convo.id, role=Role.USER, content="Lisbon trams")
    token = store.share_conversation(alice.id, convo.id).token
    store.delete_conversation(alice.id, convo.id)
    with pytest.raises(NotFound):
        store.get_conversation(alice.id, convo.id)
    with pytest.raises(NotFound):
        store.get_shared(token)
    with pytest.raises(NotFound):
        store.delete_conversation(alice.id, convo.id)
    assert store.list_conversations(alice.id, archived=None).items == ()
    assert store.search_conversations(alice.id, "Lisbon") == []


def test_search_matches_titles_and_contents_literally(
    store: Store, alice: User, bob: User, convo: Conversation
) -> None:
    store.append_message(alice.id, convo.id, role=Role.USER, content="Budget is 100% fixed")
    plain = store.create_conversation(alice.id, title="numbers")
    store.append_message(alice.id, plain.id, role=Role.USER, content="1000 and a_b")
    store.create_conversation(bob.id, title="lisbon for bob")
    hits = store.search_conversations(alice.id, "LISBON")
    assert [(h.conversation.id, h.title_matched) for h in hits] == [(convo.id, True)]
    [hit] = store.search_conversations(alice.id, "100%")
    assert hit.conversation.id == convo.id and "100%" in hit.snippet
    assert len(hit.message_ids) == 1
    assert [h.conversation.id for h in store.search_conversations(alice.id, "a_b")] == [plain.id]
    assert store.search_conversations(alice.id, "a%b") == []
    assert store.search_conversations(alice.id, "_") != []
    assert store.search_conversations(alice.id, "\\") == []


# -- messages ------------------------------------------------------------------------


def test_append_allocates_seq_and_chains_parents(
    store: Store, alice: User, bob: User, convo: Conversation
) -> None:
    first = store.append_message(alice.id, convo.id, role=Role.USER, content="hi")
    second = store.append_message(alice.id, convo.id, role=Role.ASSISTANT, content="hello")
    assert (first.seq, first.parent_message_id) == (1, None)
    assert (second.seq, second.parent_message_id) == (2, first.id)
    assert store.get_message(alice.id, convo.id, second.id) == second
    elsewhere = store.create_conversation(alice.id)
    with pytest.raises(NotFound):
        store.append_message(alice.id, elsewhere.id, role=Role.USER, content="x", parent=first.id)
    with pytest.raises(InvalidRequest):
        store.append_message(alice.id, convo.id, role="robot", content="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        store.append_message(alice.id, convo.id, role=Role.USER, content="nul\x00")


def test_concurrent_appends_get_gap_free_monotonic_seqs(
    store: Store, alice: User, convo: Conversation
) -> None:
    per_thread = 10

    def work(i: int) -> list[int]:
        return [
            store.append_message(alice.id, convo.id, role=Role.USER, content=f"{i}:{n}").seq
            for n in range(per_thread)
        ]

    results = run_threads(6, work)
    for seqs in results:
        assert seqs == sorted(seqs)
    tree = store.get_message_tree(alice.id, convo.id)
    assert [m.seq for m in tree] == list(range(1, 6 * per_thread + 1))
    assert sorted(s for seqs in results for s in seqs) == [m.seq for m in tree]
    # Every append continued the then-newest message: one linear branch, nothing lost.
    assert [m.parent_message_id for m in tree] == [None] + [m.id for m in tree[:-1]]
    assert len(store.get_active_branch(alice.id, convo.id)) == len(tree)


def test_draft_streams_then_finalises_once(store: Store, alice: User, convo: Conversation) -> None:
    question = store.append_message(alice.id, convo.id, role=Role.USER, content="q")
    draft = store.create_draft(alice.id, convo.id, model="tiny", request_id="req-1")
    assert draft.is_open_draft and draft.role is Role.ASSISTANT
    assert draft.parent_message_id == question.id
    store.update_draft(convo.id, draft.id, "Hel")
    store.update_draft(convo.id, draft.id, "Hello")
    assert store.get_message(alice.id, convo.id, draft.id).content == "Hello"
    final = store.finalize_message(
        convo.id,
        draft.id,
        status=MessageStatus.COMPLETE,
        finish_reason="stop",
        prompt_tokens=3,
        completion_tokens=2,
    )
    assert (final.status, final.content, final.completion_tokens) == ("complete", "Hello", 2)
    with pytest.raises(InvalidRequest):
        store.update_draft(convo.id, draft.id, "late token")
    with pytest.raises(InvalidRequest):
        store.finalize_message(convo.id, draft.id, status=MessageStatus.BLOCKED, finish_reason="x")
    with pytest.raises(NotFound):
        store.update_draft(convo.id, "no-such-message", "x")
    blocked = store.create_draft(alice.id, convo.id)
    cut = store.finalize_message(
        convo.id,
        blocked.id,
        status=MessageStatus.BLOCKED,
        finish_reason="content_filter",
        content="[cut]",
    )
    assert (cut.status, cut.content) == (MessageStatus.BLOCKED, "[cut]")


def test_recovery_marks_only_open_drafts(store: Store, alice: User, convo: Conversation) -> None:
    other = store.create_conversation(alice.id)
    open_here = store.create_draft(alice.id, convo.id)
    store.update_draft(convo.id, open_here.id, "partial")
    open_there = store.create_draft(alice.id, other.id)
    done = store.create_draft(alice.id, convo.id)
    store.finalize_message(convo.id, done.id, status=MessageStatus.COMPLETE, finish_reason="stop")
    marked = store.mark_interrupted_drafts(convo.id)
    assert [(m.id, m.content, m.finish_reason) for m in marked] == [
        (open_here.id, "partial", "interrupted")
    ]
    assert [m.id for m in store.mark_interrupted_drafts()] == [open_there.id]
    assert store.mark_interrupted_drafts() == []
    assert store.get_message(alice.id, convo.id, done.id).finish_reason == "stop"
    assert store.get_message(alice.id, convo.id, open_here.id).status is MessageStatus.INCOMPLETE


def test_edit_and_regenerate_keep_old_branches(
    store: Store, alice: User, convo: Conversation
) -> None:
    q1 = store.append_message(alice.id, convo.id, role=Role.USER, content="q1")
    a1 = store.append_message(alice.id, convo.id, role=Role.ASSISTANT, content="a1")
    q2 = store.append_message(alice.id, convo.id, role=Role.USER, content="q2")
    a2 = store.append_message(alice.id, convo.id, role=Role.ASSISTANT, content="a2")
    q2_edit = store.edit_message(alice.id, convo.id, q2.id, "q2 edited")
    assert (q2_edit.parent_message_id, q2_edit.role) == (a1.id, Role.USER)
    assert [m.content for m in store.get_active_branch(alice.id, convo.id)] == [
        "q1",
        "a1",
        "q2 edited",
    ]
    regen = store.create_draft(alice.id, convo.id, parent=q2.id)
    old = store.get_active_branch(alice.id, convo.id, leaf_message_id=a2.id)
    assert [m.id for m in old] == [q1.id, a1.id, q2.id, a2.id]
    assert [m.id for m in store.get_active_branch(alice.id, convo.id)][-2:] == [q2.id, regen.id]
    new_root = store.edit_message(alice.id, convo.id, q1.id, "q1 again")
    assert new_root.parent_message_id is None
    assert store.get_active_branch(alice.id, convo.id) == [new_root]
    tree = store.get_message_tree(alice.id, convo.id)
    assert len(tree) == 7 and [m.seq for m in tree] == list(range(1, 8))
    follow_up = store.append_message(alice.id, convo.id, role=Role.ASSISTANT, content="a")
    assert follow_up.parent_message_id == new_root.id
    explicit = store.append_message(alice.id, convo.id, role=Role.USER, content="root", parent=None)
    assert explicit.parent_message_id is None
    with pytest.raises(NotFound):
        store.get_active_branch(alice.id, convo.id, leaf_message_id="missing")
    assert ACTIVE_LEAF is not None


def test_branch_into_new_conversation(store: Store, alice: User, convo: Conversation) -> None:
    store.set_system_prompt(alice.id, convo.id, "sp")
    q1 = store.append_message(alice.id, convo.id, role=Role.USER, content="q1")
    a1 = store.append_message(alice.id, convo.id, role=Role.ASSISTANT, content="a1")
    store.append_message(alice.id, convo.id, role=Role.USER, content="q2")
    copy = store.branch_to_new_conversation(alice.id, convo.id, a1.id, title="fork")
    assert (copy.parent_conversation_id, copy.branch_point_message_id) == (convo.id, a1.id)
    assert (copy.title, copy.system_prompt) == ("fork", "sp")
    path = store.get_active_branch(alice.id, copy.id)
    assert [(m.seq, m.content) for m in path] == [(1, "q1"), (2, "a1")]
    assert path[0].id != q1.id and path[1].parent_message_id == path[0].id
    assert store.append_message(alice.id, copy.id, role=Role.USER, content="q").seq == 3
    assert len(store.get_message_tree(alice.id, convo.id)) == 3
    assert store.list_conversations(alice.id).items[0].id == copy.id


# -- sharing and export --------------------------------------------------------------


def test_share_is_a_read_only_snapshot(store: Store, alice: User, convo: Conversation) -> None:
    store.append_message(alice.id, convo.id, role=Role.SYSTEM, content="secret prompt")
    store.append_message(alice.id, convo.id, role=Role.USER, content="q1")
    store.append_message(alice.id, convo.id, role=Role.ASSISTANT, content="a1")
    shared = store.share_conversation(alice.id, convo.id)
    assert len(shared.token) >= 22 and shared.token.replace("-", "").replace("_", "").isalnum()
    store.append_message(alice.id, convo.id, role=Role.USER, content="later")
    store.create_draft(alice.id, convo.id)
    view = store.get_shared(shared.token)
    assert [(m.role, m.content) for m in view.messages] == [
        (Role.USER, "q1"),
        (Role.ASSISTANT, "a1"),
    ]
    assert view.title == convo.title
    # Sharing again: a new link to a fresh snapshot, and the old link is gone.
    again = store.share_conversation(alice.id, convo.id)
    assert again.token != shared.token
    assert [m.content for m in again.messages] == ["q1", "a1", "later"]
    with pytest.raises(NotFound):
        store.get_shared(shared.token)
    store.revoke_share(alice.id, convo.id)
    with pytest.raises(NotFound):
        store.get_shared(again.token)
    assert store.share_conversation(alice.id, convo.id).token not in (shared.token,
                                                                      again.token)
    with pytest.raises(NotFound):
        store.get_shared("")


def test_export_is_json_with_the_whole_tree(store: Store, alice: User, convo: Conversation) -> None:
    q = store.append_message(alice.id, convo.id, role=Role.USER, content="q")
    store.append_message(alice.id, convo.id, role=Role.ASSISTANT, content="a")
    edit = store.edit_message(alice.id, convo.id, q.id, "q'")
    data = json.loads(json.dumps(store.export_conversation(alice.id, convo.id)))
    assert data["conversation"]["id"] == convo.id
    assert [m["content"] for m in data["messages"]] == ["q", "a", "q'"]
    assert data["active_leaf_message_id"] == edit.id


# -- events --------------------------------------------------------------------------


def test_usage_events_filter_and_total(store: Store, alice: User, bob: User) -> None:
    key = store.create_api_key(alice.id).key
    first = store.record_usage(
        user_id=alice.id,
        api_key_id=key.id,
        model="m",
        prompt_tokens=10,
        completion_tokens=5,
        ttft_ms=12.5,
        latency_ms=80.0,
    )
    second = store.record_usage(user_id=alice.id, model="m", prompt_tokens=1, completion_tokens=2)
    store.record_usage(user_id=bob.id, model="m", prompt_tokens=100, completion_tokens=100)
    assert [e.id for e in store.list_usage(user_id=alice.id)] == [second.id, first.id]
    assert [e.id for e in store.list_usage(api_key_id=key.id)] == [first.id]
    assert store.list_usage(user_id=alice.id, since=second.created)[0].id == second.id
    assert [e.id for e in store.list_usage(user_id=alice.id, until=second.created)] == [first.id]
    totals = store.usage_totals(user_id=alice.id)
    assert (totals.requests, totals.prompt_tokens, totals.completion_tokens) == (2, 11, 7)
    assert store.usage_totals(since=second.created + timedelta(days=1)).requests == 0
    assert first.ttft_ms == 12.5
    with pytest.raises(InvalidRequest):
        store.record_usage(user_id=alice.id, model="m", prompt_tokens=-1, completion_tokens=0)


def test_moderation_events(store: Store, alice: User, convo: Conversation) -> None:
    m = store.append_message(alice.id, convo.id, role=Role.USER, content="q")
    first = store.record_moderation(
        stage=ModerationStage.INPUT,
        category="violence",
        action="allow",
        conversation_id=convo.id,
        message_id=m.id,
    )
    second = store.record_moderation(
        stage=ModerationStage.OUTPUT,
        category="self-harm",
        action="block",
        conversation_id=convo.id,
        detail="held back 12 chars",
    )
    store.record_moderation(stage=ModerationStage.INPUT, category="spam", action="allow")
    assert [e.id for e in store.list_moderation(conversation_id=convo.id)] == [second.id, first.id]
    assert second.stage is ModerationStage.OUTPUT and second.detail == "held back 12 chars"
    assert len(store.list_moderation(since=second.created)) == 2
    with pytest.raises(InvalidRequest):
        store.record_moderation(stage="middle", category="x", action="y")  # type: ignore[arg-type]


# -- idempotent turns ----------------------------------------------------------------


def test_retried_turn_returns_the_original(
    store: Store, alice: User, bob: User, convo: Conversation
) -> None:
    turn = store.begin_turn(alice.id, convo.id, "idem-1", content="hello", request_id="r1")
    assert not turn.replayed and turn.user_message.content == "hello"
    again = store.begin_turn(alice.id, convo.id, "idem-1", content="hello")
    assert again.replayed and again.user_message == turn.user_message
    assert again.assistant_message is None
    draft = store.create_draft(alice.id, convo.id)
    store.record_turn_result(alice.id, "idem-1", assistant_message_id=draft.id)
    store.record_turn_result(alice.id, "idem-1", response={"id": "chatcmpl-1"})
    replay = store.begin_turn(alice.id, convo.id, "idem-1", content="hello")
    assert replay.assistant_message is not None and replay.assistant_message.id == draft.id
    assert replay.response == {"id": "chatcmpl-1"}
    assert len(store.get_message_tree(alice.id, convo.id)) == 2
    with pytest.raises(InvalidRequest):
        store.begin_turn(alice.id, convo.id, "idem-1", content="a different question")
    theirs = store.create_conversation(bob.id)
    assert not store.begin_turn(bob.id, theirs.id, "idem-1", content="hello").replayed
    with pytest.raises(NotFound):
        store.record_turn_result(bob.id, "unknown", response={})


def test_concurrent_retries_write_one_turn(store: Store, alice: User, convo: Conversation) -> None:
    turns = run_threads(6, lambda _: store.begin_turn(alice.id, convo.id, "k", content="once"))
    assert len({t.user_message.id for t in turns}) == 1
    assert sorted(t.replayed for t in turns) == [False] + [True] * 5
    assert len(store.get_message_tree(alice.id, convo.id)) == 1


def test_purge_forgets_old_keys(store: Store, alice: User, convo: Conversation) -> None:
    old = store.begin_turn(alice.id, convo.id, "old", content="1")
    store.begin_turn(alice.id, convo.id, "new", content="2")
    assert store.purge_idempotency_keys(old.user_message.created + timedelta(microseconds=500)) == 1
    assert not store.begin_turn(alice.id, convo.id, "old", content="1").replayed
    assert store.begin_turn(alice.id, convo.id, "new", content="2").replayed


def test_ping_and_close(store: Store) -> None:
    store.ping()
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.ping()
    store.close()  # closing twice is harmless (the fixture closes again too)


def test_has_admin_key_tracks_live_admin_keys(store: Store, alice: User) -> None:
    assert not store.has_admin_key()
    store.create_api_key(alice.id)
    assert not store.has_admin_key()
    admin = store.create_api_key(alice.id, is_admin=True)
    assert store.has_admin_key()
    store.revoke_api_key(alice.id, admin.key.id)
    assert not store.has_admin_key()


# -- switching branches --------------------------------------------------------------


def test_switching_branches_moves_the_active_leaf_and_new_turns_follow_it(
        store: Store, alice: User, convo: Conversation) -> None:
    q1 = store.append_message(alice.id, convo.id, role=Role.USER, content="q1")
    a1 = store.append_message(alice.id, convo.id, role=Role.ASSISTANT, content="a1")
    q2 = store.append_message(alice.id, convo.id, role=Role.USER, content="q2")
    a2 = store.append_message(alice.id, convo.id, role=Role.ASSISTANT, content="a2")
    edited = store.edit_message(alice.id, convo.id, q2.id, "q2 edited")
    b2 = store.append_message(alice.id, convo.id, role=Role.ASSISTANT, content="b2")

    def active() -> list[str]:
        return [m.content for m in store.get_active_branch(alice.id, convo.id)]

    assert active() == ["q1", "a1", "q2 edited", "b2"]
    # Back to the first sibling: its branch, down to its newest descendant.
    branch = store.set_active_branch(alice.id, convo.id, q2.id)
    assert [m.id for m in branch] == [q1.id, a1.id, q2.id, a2.id]
    assert active() == ["q1", "a1", "q2", "a2"]
    assert store.export_conversation(alice.id, convo.id)["active_leaf_message_id"] == a2.id
    # A new turn continues the chosen branch, and is then the active leaf.
    q3 = store.append_message(alice.id, convo.id, role=Role.USER, content="q3")
    assert q3.parent_message_id == a2.id
    assert active() == ["q1", "a1", "q2", "a2", "q3"]
    store.set_active_branch(alice.id, convo.id, edited.id)
    assert active() == ["q1", "a1", "q2 edited", "b2"]
    store.set_active_branch(alice.id, convo.id, q1.id)  # newest descendant of the root
    assert active() == ["q1", "a1", "q2", "a2", "q3"]
    assert b2.parent_message_id == edited.id


def test_switching_to_a_message_elsewhere_is_refused(
        store: Store, alice: User, bob: User, convo: Conversation) -> None:
    mine = store.append_message(alice.id, convo.id, role=Role.USER, content="q")
    other = store.create_conversation(alice.id, title="other")
    elsewhere = store.append_message(alice.id, other.id, role=Role.USER, content="x")
    with pytest.raises(InvalidRequest):
        store.set_active_branch(alice.id, convo.id, elsewhere.id)
    bobs = store.create_conversation(bob.id, title="bob's")
    his = store.append_message(bob.id, bobs.id, role=Role.USER, content="secret")
    for attempt in (lambda: store.set_active_branch(alice.id, convo.id, his.id),
                    lambda: store.set_active_branch(bob.id, convo.id, mine.id),
                    lambda: store.set_active_branch(alice.id, convo.id, "nobody")):
        with pytest.raises(NotFound):
            attempt()
    assert [m.id for m in store.get_active_branch(alice.id, convo.id)] == [mine.id]

"""Sequence bookkeeping: the cursors the scheduler and block manager rely on."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from chorusline.runtime.sequence import SequenceGroup, SequenceStatus, TokenSequence


def test_token_views_and_cursor() -> None:
    s = TokenSequence(request_id="r", prompt_token_ids=[1, 2, 3], max_tokens=4)
    s.output_token_ids += [7, 8]
    assert s.all_token_ids == [1, 2, 3, 7, 8]
    assert s.num_tokens == 5
    s.num_computed_tokens = 4
    assert s.num_uncomputed == 1
    assert not s.is_prefilling
    s.num_computed_tokens = 0
    assert s.is_prefilling


@given(
    st.lists(st.integers(0, 99), min_size=1, max_size=8),
    st.lists(st.integers(0, 99), max_size=8),
    st.data(),
)
def test_slice_matches_concatenation(
    prompt: list[int], out: list[int], data: st.DataObject
) -> None:
    s = TokenSequence(request_id="r", prompt_token_ids=prompt, output_token_ids=out)
    start = data.draw(st.integers(0, s.num_tokens))
    stop = data.draw(st.integers(start, s.num_tokens))
    assert s.token_ids_slice(start, stop) == s.all_token_ids[start:stop]


def test_status_words() -> None:
    assert SequenceStatus.FINISHED_LENGTH.finish_reason == "length"
    assert SequenceStatus.FINISHED_STOPPED.is_finished
    assert not SequenceStatus.PREEMPTED.is_finished
    assert SequenceStatus.RUNNING.finish_reason is None
    assert SequenceStatus.FINISHED_TIMEOUT.finish_reason == "timeout"
    assert SequenceStatus.FINISHED_TIMEOUT.is_finished


def test_rank_prefers_priority_then_admission_order() -> None:
    a = TokenSequence(request_id="a", prompt_token_ids=[1], priority=1, arrival=0.0)
    b = TokenSequence(request_id="b", prompt_token_ids=[1], priority=0, arrival=5.0)
    c = TokenSequence(request_id="c", prompt_token_ids=[1], priority=0, arrival=1.0)
    assert sorted([a, b, c], key=lambda s: s.rank) == [c, b, a]
    b.admission_order, c.admission_order = 0, 1
    assert sorted([a, b, c], key=lambda s: s.rank) == [b, c, a]


def test_group_create_shares_prompt_and_ids_are_unique() -> None:
    g = SequenceGroup.create("r", [5, 6], n=3, max_tokens=2, stop_token_ids=[0], tenant="t")
    assert [s.index for s in g.seqs] == [0, 1, 2]
    assert len({s.seq_id for s in g.seqs}) == 3
    assert all(s.prompt_token_ids == [5, 6] and s.tenant == "t" for s in g.seqs)
    assert g.leader is g.seqs[0]
    assert g.seqs[1].prompt_token_ids is not g.seqs[0].prompt_token_ids


def test_validation() -> None:
    with pytest.raises(ValueError):
        TokenSequence(request_id="r", prompt_token_ids=[])
    with pytest.raises(ValueError):
        TokenSequence(request_id="r", prompt_token_ids=[1], max_tokens=0)
    with pytest.raises(ValueError):
        SequenceGroup.create("r", [1], n=0)
    with pytest.raises(ValueError):
        SequenceGroup("r", [TokenSequence(request_id="other", prompt_token_ids=[1])])

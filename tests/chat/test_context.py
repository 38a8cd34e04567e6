"""Context assembly with the model's own tokenizer and chat template."""

from __future__ import annotations

import pytest

from chorusline.chat.context import assemble, system_text
from chorusline.protocols import ContextTooLong
from chorusline.runtime import LoadedModel
from tests.chat.tokenizers import SpyTokenizer


def turns(n: int) -> list[dict[str, str]]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message number {i} " * 5}
        for i in range(n)
    ]


def test_everything_fits_in_a_large_window(chat_model: LoadedModel) -> None:
    out = assemble(turns(6), template=chat_model.chat_template, tokenizer=chat_model.tokenizer,
                   context_window=2048, reply_budget=100, system="Be brief.")
    assert out.dropped == 0
    assert out.messages[0] == {"role": "system", "content": "Be brief."}
    text = chat_model.chat_template.render(out.messages)
    assert list(out.prompt_token_ids) == chat_model.tokenizer.encode(text, allow_special=True)


def test_oldest_turns_are_dropped_whole_to_fit(chat_model: LoadedModel) -> None:
    all_turns = turns(30)
    out = assemble(all_turns, template=chat_model.chat_template,
                   tokenizer=chat_model.tokenizer, context_window=300, reply_budget=50)
    assert 0 < out.dropped < 30
    assert out.messages[-1] == all_turns[-1]
    assert len(out.prompt_token_ids) <= 250
    # One more turn would not have fitted.
    kept = len(out.messages)
    bigger = chat_model.chat_template.render(all_turns[-(kept + 1):])
    assert len(chat_model.tokenizer.encode(bigger, allow_special=True)) > 250


def test_a_message_that_cannot_fit_is_refused(chat_model: LoadedModel) -> None:
    with pytest.raises(ContextTooLong):
        assemble([{"role": "user", "content": "word " * 500}],
                 template=chat_model.chat_template, tokenizer=chat_model.tokenizer,
                 context_window=256, reply_budget=64)


def test_system_text_joins_prompt_and_custom_instructions() -> None:
    assert system_text("  A ", "B") == "A\n\nB"
    assert system_text(None, "  ") is None


def test_a_huge_message_is_refused_without_being_tokenised(chat_model: LoadedModel) -> None:
    tokenizer = SpyTokenizer(chat_model)
    huge = [{"role": "user", "content": "lorem ipsum " * 1_000_000}]  # 12 MB
    with pytest.raises(ContextTooLong, match="more than 1948 tokens"):
        assemble(huge, template=chat_model.chat_template, tokenizer=tokenizer,
                 context_window=2048, reply_budget=100, max_token_bytes=128)
    assert tokenizer.encoded == 0


def test_a_huge_history_costs_no_more_than_the_window_can_hold(
    chat_model: LoadedModel,
) -> None:
    tokenizer = SpyTokenizer(chat_model)
    history = turns(100_000)  # ~2.3 million characters of old turns
    out = assemble(history, template=chat_model.chat_template, tokenizer=tokenizer,
                   context_window=2048, reply_budget=100, max_token_bytes=128)
    assert out.messages[-1] == history[-1] and len(out.prompt_token_ids) <= 1948
    # Every rendering is of at most 1948 * 128 bytes of turns (plus the template), and
    # the search makes O(log n) of them.
    assert tokenizer.encoded < 20 * 1948 * 128


def test_a_reply_budget_as_large_as_the_window_is_a_clear_error(
    chat_model: LoadedModel,
) -> None:
    with pytest.raises(ContextTooLong, match="max_tokens 1000000000 leaves no room"):
        assemble(turns(1), template=chat_model.chat_template, tokenizer=chat_model.tokenizer,
                 context_window=2048, reply_budget=10**9)

"""Context assembly: what the model sees for one turn, within its window.

The prompt is the system prompt and the user's custom instructions, then as many of the
most recent turns as fit the window minus the reply budget, counted with the model's own
tokenizer through its own chat template. Older turns are dropped whole, oldest first, so
the model never sees half a message; the newest user message always stays, and if even
it does not fit the request is refused with ``ContextTooLong`` rather than truncated.
Dropping is what a stored conversation does (its history is the server's to manage);
a stateless request sent its whole history on purpose, so unless it opted in
(``truncate``) a history that does not fit is refused whole, as OpenAI refuses it.

The work is bounded before any tokenising: no token is longer than ``max_token_bytes``,
so text of more than ``budget * max_token_bytes`` bytes needs more than ``budget`` tokens
whatever it says. Turns beyond that (oldest first) are dropped unread, and a newest
message beyond it is refused at once, so a 10 MB prompt costs a length check, not a
tokeniser pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chorusline.protocols import ContextTooLong, InvalidRequest, TokenizerLike


class TemplateLike(Protocol):
    def render(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str: ...


@dataclass(frozen=True)
class Assembled:
    prompt_token_ids: tuple[int, ...]
    messages: list[dict[str, str]]
    dropped: int


def system_text(system_prompt: str | None, custom_instructions: str | None) -> str | None:
    parts = [p.strip() for p in (system_prompt, custom_instructions) if p and p.strip()]
    return "\n\n".join(parts) or None


def assemble(
    turns: Sequence[dict[str, str]],
    *,
    template: TemplateLike,
    tokenizer: TokenizerLike,
    context_window: int,
    reply_budget: int,
    system: str | None = None,
    max_token_bytes: int | None = None,
    truncate: bool = True,
) -> Assembled:
    """Fit ``turns`` (oldest first, each ``{"role", "content"}``) into the window.

    Counts whole renderings rather than summing per-message counts, because the template
    adds tokens between messages; a binary search over how many turns to keep costs
    O(log n) renderings.
    """
    budget = context_window - reply_budget
    if budget < 1:
        raise ContextTooLong(
            f"max_tokens {reply_budget} leaves no room for the prompt in the context window "
            f"of {context_window} tokens", param="max_tokens")
    head = [{"role": "system", "content": system}] if system else []
    if max_token_bytes is not None:
        kept = _within_bytes(turns, budget * max_token_bytes, budget)
        if len(kept) < len(turns) and not truncate:
            raise too_long(f"more than {budget}", context_window, reply_budget)
        turns = kept

    def render(keep: int) -> list[int]:
        messages = head + list(turns[len(turns) - keep :])
        return tokenizer.encode(template.render(messages), allow_special=True)

    if not truncate:
        ids = render(len(turns)) if turns else []
        if not turns or len(ids) > budget:
            raise too_long(str(len(ids)), context_window, reply_budget)
        return Assembled(tuple(ids), head + list(turns), 0)

    low, high = 1, len(turns)
    if not turns or len(render(1)) > budget:
        size = len(render(1)) if turns else 0
        raise ContextTooLong(
            f"the message needs {size} tokens but only {budget} fit the context window "
            f"of {context_window} tokens with {reply_budget} reserved for the reply "
            "(max_tokens)",
            param="messages",
        )
    while low < high:
        middle = (low + high + 1) // 2
        if len(render(middle)) <= budget:
            low = middle
        else:
            high = middle - 1
    ids = render(low)
    return Assembled(tuple(ids), head + list(turns[len(turns) - low :]), len(turns) - low)


def too_long(prompt_tokens: str, context_window: int, reply_budget: int,
             param: str = "messages") -> ContextTooLong:
    """OpenAI's refusal, with the figures a client needs to fix the request."""
    return ContextTooLong(
        f"This model's maximum context length is {context_window} tokens. However, you "
        f"requested {reply_budget} tokens for the completion (max_tokens) and your prompt "
        f"needs {prompt_tokens} tokens, so at most {context_window - reply_budget} fit. "
        "Shorten the prompt or lower max_tokens.", param=param)


def fit_prompt(prompt_token_ids: Sequence[int], *, context_window: int,
               reply_budget: int) -> Assembled:
    """A raw prompt (legacy completions) as it is: refused, never cut, if it and the
    reply budget do not fit the window."""
    if not prompt_token_ids:
        raise InvalidRequest("the prompt must not be empty", param="prompt")
    if len(prompt_token_ids) + reply_budget > context_window:
        raise too_long(str(len(prompt_token_ids)), context_window, reply_budget, "prompt")
    return Assembled(tuple(prompt_token_ids), [], 0)


def _within_bytes(turns: Sequence[dict[str, str]], limit: int,
                  budget: int) -> Sequence[dict[str, str]]:
    """The newest turns whose text fits ``limit`` bytes (see the module docstring).

    Counted in characters, which never exceed the UTF-8 bytes: a turn dropped here is
    certainly too long, and nothing is encoded just to be measured."""
    total = 0
    for keep, turn in enumerate(reversed(turns)):
        total += len(turn["content"])
        if total > limit:
            if keep == 0:
                raise ContextTooLong(
                    f"the message needs more than {budget} tokens, the most that fit the "
                    "context window with the reply budget", param="messages")
            return turns[len(turns) - keep:]
    return turns

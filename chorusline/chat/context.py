"""Context assembly: what the model sees for one turn, within its window.

The prompt is the system prompt and the user's custom instructions, then as many of the
most recent turns as fit the window minus the reply budget, counted with the model's own
tokenizer through its own chat template. Older turns are dropped whole, oldest first, so
the model never sees half a message; the newest user message always stays, and if even
it does not fit the request is refused with ``ContextTooLong`` rather than truncated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from chorusline.protocols import ContextTooLong


class TemplateLike(Protocol):
    def render(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str: ...


class TokenizerLike(Protocol):
    def encode(self, text: str, *, allow_special: bool = False) -> list[int]: ...

    # Decoding single tokens, for logprobs (see ``ChatService.token_bytes``).
    def token_bytes(self, token_id: int) -> bytes: ...

    @property
    def special_tokens(self) -> Mapping[str, int]: ...


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
) -> Assembled:
    """Fit ``turns`` (oldest first, each ``{"role", "content"}``) into the window.

    Counts whole renderings rather than summing per-message counts, because the template
    adds tokens between messages; a binary search over how many turns to keep costs
    O(log n) renderings.
    """
    budget = context_window - reply_budget
    head = [{"role": "system", "content": system}] if system else []

    def render(keep: int) -> list[int]:
        messages = head + list(turns[len(turns) - keep :])
        return tokenizer.encode(template.render(messages), allow_special=True)

    low, high = 1, len(turns)
    if not turns or len(render(1)) > budget:
        size = len(render(1)) if turns else 0
        raise ContextTooLong(
            f"the message needs {size} tokens but only {budget} fit the context window "
            f"of {context_window} with {reply_budget} reserved for the reply",
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

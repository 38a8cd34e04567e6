"""Automatic titles: after a conversation's first reply, name it, as ChatGPT does.

The title is asked of the model itself, with a tiny budget and the lowest priority there
is, so it never takes room from anyone's turn: the scheduler serves every real request
first, and a deadline bounds how long the title may wait. When the model cannot answer
in time (the engine is busy), will not (its answer is empty or moderation refuses it),
or the engine refuses the request outright, the title is the first words of the user's
message instead. Either way it is written only if the conversation is still untitled,
in one conditional update, so a rename by its owner always wins, however late.

Titles cost the user nothing: the request is the system's, not the user's, so it is not
rate-limited, and it records no usage. It runs as a background task of the conversation
actor, which is where the first reply's end is known; any failure is logged and
forgotten (a conversation without a title is no error).
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import trio

from chorusline.actors import ActorContext
from chorusline.chat.deps import ChatDeps
from chorusline.chat.principal import Principal
from chorusline.chat.runner import prepare
from chorusline.protocols import ChoruslineError, GenerationRequest, SamplingParams

log = logging.getLogger("chorusline.chat")

#: The longest title kept, in characters.
MAX_TITLE = 60
#: What the model may spend on a title, and how long it may wait for a batch slot.
TITLE_TOKENS = 16
TITLE_DEADLINE_S = 20.0
#: Behind every tier's requests (a larger number is served later).
TITLE_PRIORITY_OFFSET = 1000
INSTRUCTION = ("Write a short title, at most six words, for a conversation that starts "
               "with the message below. Reply with the title only, no quotes.")
#: Markdown a model may dress its title in (and the spaces around it).
MARKUP = "#*_` \t"
#: Quote marks a model may wrap its title in (typographic ones as escapes).
QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb"
_PREFIX = re.compile(r"^(?:title\s*[:\-]\s*)", re.IGNORECASE)


def derived_title(text: str) -> str:
    """The first words of ``text`` that fit in ``MAX_TITLE`` characters."""
    words = " ".join(text.split())
    if len(words) <= MAX_TITLE:
        return words
    cut = words[:MAX_TITLE - 1].rsplit(" ", 1)[0] or words[:MAX_TITLE - 1]
    return cut.rstrip(" ,;:.-") + "…"


def cleaned(generated: str) -> str:
    """The model's answer as a title: its first line, without markup, quotes, a
    ``Title:`` prefix or a final full stop; "" if nothing is left."""
    line = next((part for part in generated.splitlines() if part.strip()), "")
    line = _PREFIX.sub("", line.strip(MARKUP))
    line = line.strip(MARKUP).strip(QUOTES).strip(MARKUP).rstrip(".")
    return derived_title(line) if line else ""


async def generated_title(context: ActorContext, deps: ChatDeps, principal: Principal,
                          question: str) -> str:
    """The model's title for ``question``, or "" when it did not make one in time."""
    params = SamplingParams(temperature=0.0, max_tokens=TITLE_TOKENS)
    model = deps.models.default  # the default chat model names every conversation
    if model.template is None:
        return ""
    prompt = await prepare(deps, model,
                           [{"role": "user", "content": f"{INSTRUCTION}\n\n{question}"}],
                           None, params)
    request = GenerationRequest(
        f"title-{uuid.uuid4().hex}", prompt.prompt_token_ids, params,
        principal.tier.priority + TITLE_PRIORITY_OFFSET, principal.user_id,
        deadline=time.monotonic() + TITLE_DEADLINE_S)
    driver = await context.system.registry.wait_for(model.driver_key)
    stream = await driver.ask(request)
    text, finish = "", None
    try:
        async for chunks in stream:
            for chunk in chunks:
                text += chunk.text
                finish = chunk.finish_reason or finish
    finally:
        stream.close()
    if finish not in ("stop", "length"):  # timed out behind real work, or failed
        return ""
    title = cleaned(text)
    verdict = deps.moderator.check_output(title)  # at most 60 characters: no thread
    return "" if verdict.blocked or verdict.flagged else title


async def auto_title(context: ActorContext, deps: ChatDeps, principal: Principal,
                     conversation_id: str, question: str, persisted: trio.Event) -> None:
    """Once the first reply is stored, title the conversation if it is still untitled."""
    try:
        await persisted.wait()
        conversation = await deps.db(deps.store.get_conversation, principal.user_id,
                                     conversation_id)
        if conversation.title:
            return
        try:
            title, source = await generated_title(context, deps, principal, question), "model"
        except ChoruslineError:  # overloaded, shutting down: the user's words will do
            title = ""
        if not title:
            title, source = derived_title(question), "derived"
        if not title:
            return
        named: bool = await deps.db(deps.store.title_if_untitled, principal.user_id,
                                    conversation_id, title)
        if named:
            context.system.recorder.record("conversation_titled", context.path,
                                           conversation_id=conversation_id, title=title,
                                           source=source)
    except Exception:  # a missing title is no reason to crash the conversation
        log.exception("could not title conversation %s", conversation_id)

"""``/v1/me``: the caller's own account, and the custom instructions it keeps.

Custom instructions are per user, not per key or per conversation: whatever key (or,
later, page session) the user comes through, every new turn in any of their stored
conversations starts with them (after the conversation's own system prompt; a turn may
override them, see ``ChatRequest.custom_instructions``). Stateless chat completions are
left alone: their caller sends the whole prompt.
"""

from __future__ import annotations

from typing import Any

from quart import Response
from quart_trio import QuartTrio

from chorusline.chat import ChatService, User
from chorusline.protocols import InvalidRequest
from chorusline.web import conversation_views as views
from chorusline.web.conversations import object_body
from chorusline.web.http import authenticate, json_response

#: The longest custom instructions kept (the store's own limit).
MAX_INSTRUCTIONS = 100_000


def user_view(user: User) -> dict[str, Any]:
    return {"object": "user", "id": user.id, "name": user.name,
            "custom_instructions": user.custom_instructions,
            "created_at": int(user.created.timestamp())}


def register(app: QuartTrio, chat: ChatService) -> None:
    @app.get("/v1/me")
    async def get_me() -> Response:
        principal = await authenticate(chat)
        return json_response(user_view(await chat.accounts.get_user(principal.user_id)))

    @app.patch("/v1/me")
    async def patch_me() -> Response:
        principal = await authenticate(chat)
        body = await object_body({"custom_instructions"})
        if "custom_instructions" not in body:
            raise InvalidRequest("nothing to change: send custom_instructions",
                                 param="custom_instructions")
        text = views.optional_text(body, "custom_instructions")
        if text is not None and len(text) > MAX_INSTRUCTIONS:
            raise InvalidRequest(f"custom_instructions is longer than {MAX_INSTRUCTIONS:,} "
                                 "characters", param="custom_instructions")
        user = await chat.accounts.set_custom_instructions(principal.user_id, text)
        return json_response(user_view(user))

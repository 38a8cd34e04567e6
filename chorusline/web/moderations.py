"""``POST /v1/moderations``: the chat path's input policy, asked directly, in OpenAI's
format.

The verdicts are ``ChatService.moderate``'s, the very check a chat turn's input gets,
so a client that moderates first learns what the chat path would do; the mapping onto
OpenAI's categories is ``chorusline.protocols.openai_moderations``'. Authenticated, but
not charged to the key's rate limit: it runs no model, and its CPU work is bounded by
the body size limit and the service's thread limiter.
"""

from __future__ import annotations

import uuid

from quart import Response
from quart_trio import QuartTrio

# A submodule import, pending ``openai_moderations`` joining ``chorusline.protocols``'
# ``__all__`` (as ``openai`` is).
import chorusline.protocols.openai_moderations as mwire
from chorusline.chat import ChatService
from chorusline.web.http import authenticate, json_body, json_response


def register(app: QuartTrio, chat: ChatService) -> None:
    @app.post("/v1/moderations")
    async def moderations() -> Response:
        await authenticate(chat)
        parsed = mwire.parse_moderation_request(await json_body())
        verdicts = await chat.moderate(parsed.inputs)
        results = [
            mwire.moderation_result(
                [mwire.ModerationFinding(f.category, f.score, action != "allow")
                 for f, action in zip(v.findings, v.actions, strict=True)],
                v.blocked, str(v.action))
            for v in verdicts
        ]
        return json_response(mwire.moderation_response(f"modr-{uuid.uuid4().hex}", results))

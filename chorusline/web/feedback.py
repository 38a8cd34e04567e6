"""Feedback on replies: thumbs up / down, with an optional comment, per assistant message.

``PUT`` sets (or replaces) the caller's rating of one assistant message, ``DELETE``
removes it, and ``GET .../feedback`` lists a conversation's ratings; the export carries
them too. Only the conversation's owner reaches any of it (404 otherwise, as for every
conversation route), and only an assistant message can be rated (400).
"""

from __future__ import annotations

from typing import Any

from quart import Response
from quart_trio import QuartTrio

from chorusline.chat import ChatService, Feedback, Rating
from chorusline.protocols import InvalidRequest
from chorusline.web import conversation_views as views
from chorusline.web.conversations import object_body
from chorusline.web.http import authenticate, json_response

RATINGS = [rating.value for rating in Rating]


def feedback_view(feedback: Feedback) -> dict[str, Any]:
    return {"object": "message.feedback", "message_id": feedback.message_id,
            "conversation_id": feedback.conversation_id, "rating": feedback.rating.value,
            "comment": feedback.comment,
            "created_at": int(feedback.created.timestamp()),
            "updated_at": int(feedback.updated.timestamp())}


def register(app: QuartTrio, chat: ChatService) -> None:
    conversations = chat.conversations
    message_route = "/v1/conversations/<conversation_id>/messages/<message_id>/feedback"

    @app.put(message_route)
    async def rate(conversation_id: str, message_id: str) -> Response:
        principal = await authenticate(chat)
        cid = views.checked_id(conversation_id, "conversation_id")
        mid = views.checked_id(message_id, "message_id")
        body = await object_body({"rating", "comment"})
        rating = body.get("rating")
        if rating not in RATINGS:
            raise InvalidRequest(f"rating must be one of {', '.join(RATINGS)}",
                                 param="rating")
        given = await conversations.rate(principal, cid, mid, Rating(rating),
                                         views.optional_text(body, "comment"))
        return json_response(feedback_view(given))

    @app.delete(message_route)
    async def unrate(conversation_id: str, message_id: str) -> Response:
        principal = await authenticate(chat)
        cid = views.checked_id(conversation_id, "conversation_id")
        mid = views.checked_id(message_id, "message_id")
        removed = await conversations.unrate(principal, cid, mid)
        return json_response({"object": "message.feedback.deleted", "message_id": mid,
                              "deleted": removed})

    @app.get("/v1/conversations/<conversation_id>/feedback")
    async def list_feedback(conversation_id: str) -> Response:
        principal = await authenticate(chat)
        cid = views.checked_id(conversation_id, "conversation_id")
        given = await conversations.feedback(principal, cid)
        return json_response({"object": "list", "data": [feedback_view(f) for f in given]})

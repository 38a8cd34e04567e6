"""Stopping a reply that is still being generated: the Stop button's routes.

A client that keeps its stream open can stop it by closing the connection, but a page
that reloaded, a second tab or a client that made a non-streaming call has no stream to
close. These routes stop a turn by its request id (the ``id`` of every chunk) or, for a
stored conversation, by the assistant message being written. Only the turn's owner can
(another user's id is a 404, like an unknown one). The reply ends with
``finish_reason: "abort"`` and is stored ``incomplete`` with what was generated; a turn
whose generation already ended is a 409.
"""

from __future__ import annotations

from quart import Response
from quart_trio import QuartTrio

from chorusline.chat import ChatService
from chorusline.web import conversation_views as views
from chorusline.web.http import authenticate, json_response


def stopped(request_id: str, message_id: str | None = None) -> Response:
    body = {"object": "chat.completion.stop", "id": request_id, "stopped": True}
    if message_id is not None:
        body["message_id"] = message_id
    return json_response(body)


def register(app: QuartTrio, chat: ChatService) -> None:
    @app.post("/v1/chat/completions/<request_id>/stop")
    async def stop_completion(request_id: str) -> Response:
        principal = await authenticate(chat)
        request_id = views.checked_id(request_id, "request_id")
        await chat.stop(principal, request_id)
        return stopped(request_id)

    @app.post("/v1/conversations/<conversation_id>/messages/<message_id>/stop")
    async def stop_message(conversation_id: str, message_id: str) -> Response:
        principal = await authenticate(chat)
        message_id = views.checked_id(message_id, "message_id")
        request_id = await chat.stop_reply(
            principal, views.checked_id(conversation_id, "conversation_id"), message_id)
        return stopped(request_id, message_id)

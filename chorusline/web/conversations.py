"""Conversation management routes (``/v1/conversations...``, ``/v1/shared/{token}``).

Every route but the shared view authenticates first and hands the store the caller's
user id; the store answers NotFound for what is missing, deleted or someone else's, so
another user's conversation is a 404 exactly like a missing one and ids do not leak.
Store calls go through ``chat.db`` (a worker thread); a turn goes through
``chat.chat`` like any chat completion, so rate limits, moderation, idempotency and
durable drafts apply to it unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from chorusline.chat import ChatRequest, ChatService, Message, Principal
from chorusline.protocols import InvalidRequest
from chorusline.protocols import openai as wire
from chorusline.web import conversation_views as views
from chorusline.web.completions import build_request, complete

_PATCHABLE = {"title", "archived", "system_prompt"}
#: A turn's body: its own fields plus the sampling fields of a chat completion.
_TURN_FIELDS = ("content", "edit_message_id", "regenerate_message_id")


def turn_request(body: dict[str, Any], conversation_id: str, model_name: str,
                 idempotency_key: str | None
                 ) -> tuple[ChatRequest, wire.ChatCompletionRequest]:
    """A conversation turn from its body, parsed as the chat completion it amounts to,
    so sampling fields, ``stream`` and ``stream_options`` get exactly the same checks."""
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        raise InvalidRequest("content must be a string", param="content")
    edit = views.body_id(body, "edit_message_id")
    regenerate = views.body_id(body, "regenerate_message_id")
    if edit is not None and regenerate is not None:
        raise InvalidRequest("edit_message_id and regenerate_message_id exclude each other",
                             param="regenerate_message_id")
    if content is None and regenerate is None:
        raise InvalidRequest("content is required", param="content")
    rest = {k: v for k, v in body.items() if k not in _TURN_FIELDS}
    parsed = wire.parse_chat_request({
        **rest, "model": model_name, "conversation_id": conversation_id,
        "messages": [{"role": "user", "content": content or ""}],
    })
    turn = build_request(parsed, model_name, idempotency_key)
    return replace(turn, edit_message_id=edit, regenerate_message_id=regenerate), parsed


async def stored_reply(chat: ChatService, principal: Principal, turn: ChatRequest) -> Response:
    """Run a turn to its end and answer with the assistant message *as stored*, so a
    client that got this response can rely on what a later read will show."""
    handle = await chat.chat(principal, turn)
    try:
        async for _ in handle.stream:
            pass
    finally:
        handle.stream.close()
    await handle.persisted.wait()
    if handle.assistant_message_id is None or handle.conversation_id is None:
        raise RuntimeError("a stored turn came back without its message ids")
    stored: Message = await chat.db(chat.store.get_message, principal.user_id,
                                    handle.conversation_id, handle.assistant_message_id)
    body = {**views.message(stored), "user_message_id": handle.user_message_id,
            "replayed": handle.replayed}
    response = Response(wire.json_bytes(body), mimetype="application/json")
    response.headers.update(handle.rate_headers)
    response.headers["X-Request-Id"] = handle.request_id
    return response


def register(app: QuartTrio, chat: ChatService, model_name: str) -> None:
    """Add the conversation routes to ``app``."""
    # app.py imports this module before it defines these helpers: import them late.
    from chorusline.web.app import authenticate, json_body, json_response

    async def user() -> str:
        return (await authenticate(chat)).user_id

    async def optional_body() -> Any:
        """A body whose every field is optional may be left out altogether."""
        return {} if not (await request.get_data(as_text=False)).strip() else await json_body()

    async def owned(conversation_id: str) -> tuple[str, str]:
        """The caller's user id and the checked conversation id (auth comes first, so an
        unauthenticated caller learns nothing about ids)."""
        return await user(), views.checked_id(conversation_id, "conversation_id")

    @app.post("/v1/conversations")
    async def create_conversation() -> Response:
        user_id = await user()
        body = views.object_body(await optional_body(), {"title", "system_prompt"})
        title = views.optional_text(body, "title") or ""
        prompt = views.optional_text(body, "system_prompt")
        created = await chat.db(chat.store.create_conversation, user_id, title=title,
                                system_prompt=prompt, model=model_name)
        return json_response(views.conversation(created), 201)

    @app.get("/v1/conversations")
    async def list_conversations() -> Response:
        user_id = await user()
        limit = views.query_int(request.args, "limit", 20, 100)
        archived = views.query_flag(request.args, "archived", any_word="all")
        cursor = request.args.get("cursor") or None
        page = await chat.db(chat.store.list_conversations, user_id, limit=limit, cursor=cursor,
                             archived=archived)
        return json_response(views.listing([views.conversation(c) for c in page.items],
                                           page.next_cursor))

    @app.get("/v1/conversations/search")
    async def search_conversations() -> Response:
        user_id = await user()
        query = request.args.get("q", "")
        if not query.strip():
            raise InvalidRequest("q must not be empty", param="q")
        limit = views.query_int(request.args, "limit", 20, 100)
        hits = await chat.db(chat.store.search_conversations, user_id, query, limit=limit)
        return json_response(views.listing([views.search_hit(h) for h in hits]))

    async def messages_of(user_id: str, conversation_id: str) -> list[dict[str, Any]]:
        tree = views.query_flag(request.args, "tree")
        read = chat.store.get_message_tree if tree else chat.store.get_active_branch
        found: list[Message] = await chat.db(read, user_id, conversation_id)
        return [views.message(m) for m in found]

    @app.get("/v1/conversations/<conversation_id>")
    async def get_conversation(conversation_id: str) -> Response:
        user_id, cid = await owned(conversation_id)
        found = await chat.db(chat.store.get_conversation, user_id, cid)
        messages = await messages_of(user_id, cid)
        return json_response({**views.conversation(found), "messages": messages})

    @app.patch("/v1/conversations/<conversation_id>")
    async def patch_conversation(conversation_id: str) -> Response:
        user_id, cid = await owned(conversation_id)
        body = views.object_body(await json_body(), _PATCHABLE)
        if not body:
            raise InvalidRequest(f"nothing to change: send one of {sorted(_PATCHABLE)}")
        title = views.optional_text(body, "title")
        prompt = views.optional_text(body, "system_prompt")
        archived = body.get("archived")
        if "archived" in body and not isinstance(archived, bool):
            raise InvalidRequest("archived must be a boolean", param="archived")
        if "title" in body and title is None:
            raise InvalidRequest("title must be a string", param="title")
        found = await chat.db(chat.store.get_conversation, user_id, cid)
        if title is not None:
            found = await chat.db(chat.store.rename_conversation, user_id, cid, title)
        if "system_prompt" in body:
            found = await chat.db(chat.store.set_system_prompt, user_id, cid, prompt)
        if isinstance(archived, bool):
            found = await chat.db(chat.store.set_archived, user_id, cid, archived)
        return json_response(views.conversation(found))

    @app.delete("/v1/conversations/<conversation_id>")
    async def delete_conversation(conversation_id: str) -> Response:
        user_id, cid = await owned(conversation_id)
        await chat.db(chat.store.delete_conversation, user_id, cid)
        return json_response({"id": cid, "object": "conversation.deleted", "deleted": True})

    @app.get("/v1/conversations/<conversation_id>/messages")
    async def list_messages(conversation_id: str) -> Response:
        user_id, cid = await owned(conversation_id)
        return json_response(views.listing(await messages_of(user_id, cid)))

    @app.post("/v1/conversations/<conversation_id>/messages")
    async def post_message(conversation_id: str) -> Response:
        principal = await authenticate(chat)
        cid = views.checked_id(conversation_id, "conversation_id")
        body = views.object_body(await json_body())
        key = request.headers.get("Idempotency-Key") or None
        turn, parsed = turn_request(body, cid, model_name, key)
        if parsed.stream:
            return await complete(chat, principal, turn, parsed, model_name)
        return await stored_reply(chat, principal, turn)

    @app.post("/v1/conversations/<conversation_id>/branch")
    async def branch_conversation(conversation_id: str) -> Response:
        user_id, cid = await owned(conversation_id)
        body = views.object_body(await json_body(), {"message_id", "title"})
        message_id = views.body_id(body, "message_id")
        if message_id is None:
            raise InvalidRequest("message_id is required", param="message_id")
        title = views.optional_text(body, "title")
        created = await chat.db(chat.store.branch_to_new_conversation, user_id, cid, message_id,
                                title=title)
        return json_response(views.conversation(created), 201)

    @app.post("/v1/conversations/<conversation_id>/share")
    async def share_conversation(conversation_id: str) -> Response:
        user_id, cid = await owned(conversation_id)
        snapshot = await chat.db(chat.store.share_conversation, user_id, cid)
        url = f"{request.host_url.rstrip('/')}/v1/shared/{snapshot.token}"
        return json_response({"token": snapshot.token, "url": url,
                              "conversation_id": cid, "object": "conversation.share"})

    @app.delete("/v1/conversations/<conversation_id>/share")
    async def revoke_share(conversation_id: str) -> Response:
        user_id, cid = await owned(conversation_id)
        await chat.db(chat.store.revoke_share, user_id, cid)
        return json_response({"conversation_id": cid, "object": "conversation.share",
                              "shared": False})

    @app.get("/v1/conversations/<conversation_id>/export")
    async def export_conversation(conversation_id: str) -> Response:
        user_id, cid = await owned(conversation_id)
        exported = await chat.db(chat.store.export_conversation, user_id, cid)
        response = json_response(exported)
        response.headers["Content-Disposition"] = f'attachment; filename="{cid}.json"'
        return response

    @app.get("/v1/shared/<token>")
    async def get_shared(token: str) -> Response:
        """No authentication: the unguessable token is the capability. Only GET is
        routed, so any write to a shared link is a 405 and changes nothing."""
        snapshot = await chat.db(chat.store.get_shared, views.checked_id(token, "token"))
        return json_response(views.shared(snapshot))

"""Conversation management routes (``/v1/conversations...``; share links are
``web.shares``).

Every route authenticates first and goes through
``chat.conversations`` with the caller's ``Principal``; the store behind it answers
NotFound for what is missing, deleted or someone else's, so another user's conversation
is a 404 exactly like a missing one and ids do not leak. A turn goes through
``chat.chat`` like any chat completion, so rate limits, moderation, idempotency and
durable drafts apply to it unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from chorusline.chat import ChatRequest, ChatService, Principal
from chorusline.protocols import InvalidRequest, openai as wire
from chorusline.web import conversation_views as views
from chorusline.web.completions import build_request, complete
from chorusline.web.http import authenticate, json_body, json_response, turn_headers
from chorusline.web.openapi_schemas import sampling_properties

_PATCHABLE = {"title", "archived", "system_prompt"}
#: A turn's own fields; the rest of its body is the sampling fields of a chat completion.
_TURN_FIELDS = ("content", "edit_message_id", "regenerate_message_id", "tool_results")
#: Everything a turn body may hold: anything else is refused, as OpenAI refuses it, so a
#: misspelt ``max_token`` is a 400 rather than a reply under the default budget.
TURN_BODY_FIELDS = frozenset({*_TURN_FIELDS, *sampling_properties(), "model", "user",
                              "tools", "tool_choice", "parallel_tool_calls"})


def turn_request(body: dict[str, Any], conversation_id: str, model_name: str,
                 idempotency_key: str | None
                 ) -> tuple[ChatRequest, wire.ChatCompletionRequest]:
    """A conversation turn from its body, parsed as the chat completion it amounts to,
    so sampling fields, ``model``, ``stream`` and ``stream_options`` get exactly the same
    checks."""
    if "messages" in body:  # the conversation holds the history; a turn adds one message
        raise InvalidRequest("this route takes the user's message as 'content', not "
                             "'messages': the conversation holds the history",
                             param="messages")
    wire.reject_unknown(body, TURN_BODY_FIELDS)
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        raise InvalidRequest("content must be a string", param="content")
    edit = views.body_id(body, "edit_message_id")
    regenerate = views.body_id(body, "regenerate_message_id")
    if edit is not None and regenerate is not None:
        raise InvalidRequest("edit_message_id and regenerate_message_id exclude each other",
                             param="regenerate_message_id")
    results = (() if body.get("tool_results") is None
               else wire.parse_tool_results(body["tool_results"]))
    if results and (content is not None or edit is not None or regenerate is not None):
        raise InvalidRequest("tool_results are a turn of their own: no content, edit or "
                             "regenerate with them", param="tool_results")
    if content is None and regenerate is None and not results:
        raise InvalidRequest("content is required", param="content")
    rest = {k: v for k, v in body.items() if k not in _TURN_FIELDS}
    model = body.get("model")
    parsed = wire.parse_chat_request({
        **rest, "model": model_name if model is None else model,
        "conversation_id": conversation_id,
        "messages": [{"role": "user", "content": content or ""}],
    })
    turn = build_request(parsed, idempotency_key)  # an unknown model: the router's 404
    return replace(turn, edit_message_id=edit, regenerate_message_id=regenerate,
                   content=None if results else turn.content, tool_results=results), parsed


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
    stored = await chat.conversations.message(principal, handle.conversation_id,
                                              handle.assistant_message_id)
    body = {**views.message(stored), "user_message_id": handle.user_message_id,
            "replayed": handle.replayed}
    response = Response(wire.json_bytes(body), mimetype="application/json")
    turn_headers(response, handle)
    return response


async def object_body(allowed: set[str] | None = None, *,
                      required: bool = True) -> dict[str, Any]:
    """The body as a JSON object. A route whose every field is optional may be sent
    none at all; the others answer a missing body with a 400 that says so (rather than
    "could not parse")."""
    if not (await request.get_data(as_text=False)).strip():
        if required:
            raise InvalidRequest("this route needs a JSON object body; none was sent")
        return {}
    return views.object_body(await json_body(), allowed)


def register(app: QuartTrio, chat: ChatService) -> None:
    """Add the conversation routes to ``app``."""
    conversations = chat.conversations

    async def owned(conversation_id: str) -> tuple[Principal, str]:
        """The caller and the checked conversation id (auth comes first, so an
        unauthenticated caller learns nothing about ids)."""
        return await authenticate(chat), views.checked_id(conversation_id, "conversation_id")

    @app.post("/v1/conversations")
    async def create_conversation() -> Response:
        principal = await authenticate(chat)
        body = await object_body({"title", "system_prompt"}, required=False)
        created = await conversations.create(
            principal, title=views.optional_text(body, "title") or "",
            system_prompt=views.optional_text(body, "system_prompt"), model=chat.model_name)
        return json_response(views.conversation(created), 201)

    @app.get("/v1/conversations")
    async def list_conversations() -> Response:
        principal = await authenticate(chat)
        page = await conversations.list(
            principal, limit=views.query_int(request.args, "limit", 20, 100),
            cursor=request.args.get("cursor") or None,
            archived=views.query_flag(request.args, "archived", any_word="all"))
        return json_response(views.listing([views.conversation(c) for c in page.items],
                                           page.next_cursor))

    @app.get("/v1/conversations/search")
    async def search_conversations() -> Response:
        principal = await authenticate(chat)
        query = views.query_text(request.args, "q")
        limit = views.query_int(request.args, "limit", 20, 100)
        hits = await conversations.search(principal, query, limit=limit)
        return json_response(views.listing([views.search_hit(h) for h in hits]))

    async def messages_of(principal: Principal, conversation_id: str) -> list[dict[str, Any]]:
        tree = bool(views.query_flag(request.args, "tree"))
        found = await conversations.messages(principal, conversation_id, tree=tree)
        return [views.message(m) for m in found]

    @app.get("/v1/conversations/<conversation_id>")
    async def get_conversation(conversation_id: str) -> Response:
        principal, cid = await owned(conversation_id)
        found = await conversations.get(principal, cid)
        messages = await messages_of(principal, cid)
        return json_response({**views.conversation(found), "messages": messages})

    @app.patch("/v1/conversations/<conversation_id>")
    async def patch_conversation(conversation_id: str) -> Response:
        principal, cid = await owned(conversation_id)
        body = await object_body(_PATCHABLE)
        if not body:
            raise InvalidRequest(f"nothing to change: send one of {sorted(_PATCHABLE)}")
        title = views.optional_text(body, "title")
        prompt = views.optional_text(body, "system_prompt")
        archived = body.get("archived")
        if "archived" in body and not isinstance(archived, bool):
            raise InvalidRequest("archived must be a boolean", param="archived")
        if "title" in body and title is None:
            raise InvalidRequest("title must be a string", param="title")
        found = await conversations.get(principal, cid)
        if title is not None:
            found = await conversations.rename(principal, cid, title)
        if "system_prompt" in body:
            found = await conversations.set_system_prompt(principal, cid, prompt)
        if isinstance(archived, bool):
            found = await conversations.archive(principal, cid, archived)
        return json_response(views.conversation(found))

    @app.delete("/v1/conversations/<conversation_id>")
    async def delete_conversation(conversation_id: str) -> Response:
        principal, cid = await owned(conversation_id)
        await conversations.delete(principal, cid)
        return json_response({"id": cid, "object": "conversation.deleted", "deleted": True})

    @app.get("/v1/conversations/<conversation_id>/messages")
    async def list_messages(conversation_id: str) -> Response:
        principal, cid = await owned(conversation_id)
        return json_response(views.listing(await messages_of(principal, cid)))

    @app.post("/v1/conversations/<conversation_id>/messages")
    async def post_message(conversation_id: str) -> Response:
        principal, cid = await owned(conversation_id)
        body = await object_body()
        key = request.headers.get("Idempotency-Key") or None
        turn, parsed = turn_request(body, cid, chat.model_name, key)
        if parsed.stream:
            return await complete(chat, principal, turn, parsed)
        return await stored_reply(chat, principal, turn)

    @app.post("/v1/conversations/<conversation_id>/active_branch")
    async def switch_branch(conversation_id: str) -> Response:
        principal, cid = await owned(conversation_id)
        message_id = views.body_id(await object_body({"message_id"}), "message_id")
        if message_id is None:
            raise InvalidRequest("message_id is required", param="message_id")
        branch = await conversations.switch_branch(principal, cid, message_id)
        found = await conversations.get(principal, cid)
        return json_response({**views.conversation(found),
                              "messages": [views.message(m) for m in branch]})

    @app.post("/v1/conversations/<conversation_id>/branch")
    async def branch_conversation(conversation_id: str) -> Response:
        principal, cid = await owned(conversation_id)
        body = await object_body({"message_id", "title"})
        message_id = views.body_id(body, "message_id")
        if message_id is None:
            raise InvalidRequest("message_id is required", param="message_id")
        created = await conversations.branch(principal, cid, message_id,
                                             title=views.optional_text(body, "title"))
        return json_response(views.conversation(created), 201)

    @app.get("/v1/conversations/<conversation_id>/export")
    async def export_conversation(conversation_id: str) -> Response:
        principal, cid = await owned(conversation_id)
        response = json_response(await conversations.export(principal, cid))
        response.headers["Content-Disposition"] = f'attachment; filename="{cid}.json"'
        return response

"""Share links: make, read, refresh and revoke one (``/v1/conversations/{id}/share``), and
the link itself (``/v1/shared/{token}``), JSON for programs and a read-only page for
people.

A link shows a snapshot of the active branch as it was when the link was made. Sharing
again makes a new snapshot under a new token and revokes the old one, so whoever holds
the old link sees nothing (404) rather than a stale copy they might think current; the
owner hands the new link out again.

Links are built from the configured public base URL (``serve --public-url``), else from
the address of the socket the server accepted the connection on: never from the
request's ``Host`` header, which any client sets to what it likes (a link it could point
at its own site).

``/v1/shared/{token}`` answers by the ``Accept`` header: a browser, which asks for
``text/html`` first, gets the page (``chat/static/shared.html``, which reads the same
URL as JSON); anything else gets JSON, as before. The two differ by ``Accept`` only, so
the answer says ``Vary: Accept`` for caches in between.
"""

from __future__ import annotations

from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from chorusline.chat import ChatService, Principal
from chorusline.protocols import NotFound
from chorusline.web import conversation_views as views
from chorusline.web.http import authenticate, json_response
from chorusline.web.pages import page_response, static_files


def server_base_url() -> str:
    """The bound address of the socket this connection came in on (``http://HOST:PORT``,
    the server's own, whatever ``Host`` the client sent); relative without one."""
    server = request.scope.get("server")
    if not server or server[1] is None:
        return ""
    host, port = server
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def wants_page() -> bool:
    """Whether the client prefers HTML to JSON (a browser opening the link)."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def register(app: QuartTrio, chat: ChatService, *, public_url: str | None = None) -> None:
    """Add the share routes; links start with ``public_url`` (default: the address the
    server is bound to)."""
    conversations = chat.conversations
    base_url = None if not public_url else public_url.rstrip("/")
    shell = static_files("chat").get("shared.html")

    def link(cid: str, snapshot: Any) -> dict[str, Any]:
        base = server_base_url() if base_url is None else base_url
        return {"object": "conversation.share", "conversation_id": cid,
                "token": snapshot.token, "url": f"{base}/v1/shared/{snapshot.token}",
                "created_at": int(snapshot.created.timestamp())}

    async def owned(conversation_id: str) -> tuple[Principal, str]:
        return await authenticate(chat), views.checked_id(conversation_id, "conversation_id")

    @app.post("/v1/conversations/<conversation_id>/share")
    async def share_conversation(conversation_id: str) -> Response:
        principal, cid = await owned(conversation_id)
        return json_response(link(cid, await conversations.share(principal, cid)))

    @app.get("/v1/conversations/<conversation_id>/share")
    async def current_share(conversation_id: str) -> Response:
        principal, cid = await owned(conversation_id)
        conversation = await conversations.get(principal, cid)
        if conversation.share_token is None:
            raise NotFound("this conversation has no share link", param="conversation_id")
        snapshot = await conversations.get_shared(conversation.share_token)
        return json_response(link(cid, snapshot))

    @app.delete("/v1/conversations/<conversation_id>/share")
    async def revoke_share(conversation_id: str) -> Response:
        principal, cid = await owned(conversation_id)
        await conversations.revoke_share(principal, cid)
        return json_response({"conversation_id": cid, "object": "conversation.share",
                              "shared": False})

    @app.get("/v1/shared/<token>")
    async def get_shared(token: str) -> Response:
        """No authentication: the unguessable token is the capability. Only GET is
        routed, so any write to a shared link is a 405 and changes nothing."""
        if wants_page() and shell is not None:
            try:
                await conversations.get_shared(views.checked_id(token, "token"))
                status = 200
            except NotFound:
                status = 404  # the page itself says the link is gone
            response = page_response(shell.read_bytes(), "text/html")
            response.status_code = status
        else:
            snapshot = await conversations.get_shared(views.checked_id(token, "token"))
            response = json_response(views.shared(snapshot))
        response.headers["Vary"] = "Accept"
        return response

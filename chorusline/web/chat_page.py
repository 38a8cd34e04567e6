"""The chat page for people: ``/`` (the app) and ``/login``, files under
``/chat/static``.

Both pages are shells that hold no data, served to anyone: the app asks
``/v1/auth/session`` and goes to ``/login`` without one; everything it shows comes from
the API with the session cookie (``web.sessions``). A share link (``/v1/shared/{token}``)
needs no page of its own to be read, and the console lives at ``/console``.
"""

from __future__ import annotations

from quart import Response
from quart_trio import QuartTrio

from chorusline.web.pages import page_response, serve_files


def register(app: QuartTrio) -> None:
    assets = serve_files(app, "chat", "/chat/static")

    def page(name: str) -> Response:
        found = assets.get(name)
        if found is None:  # a checkout without the page's files: say so, not a 500
            return page_response(b"the chat page is not installed", "text/plain")
        return page_response(found.read_bytes(), "text/html")

    @app.get("/")
    async def chat_app() -> Response:
        return page("index.html")

    @app.get("/login")
    async def login_page() -> Response:
        return page("login.html")

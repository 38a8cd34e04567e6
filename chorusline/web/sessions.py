"""Signing in to the page: ``/v1/auth/login``, ``/v1/auth/session``, ``/v1/auth/logout``.

A successful sign-in sets the session cookie: ``HttpOnly`` (no script can read it, so
an injected one cannot steal it), ``SameSite=Lax`` (not sent on cross-site sub-requests
or posts), ``Secure`` when the page is served over TLS, ``Path=/``, and expiring with the
token. The CSRF secret the page must echo comes in the JSON answer, never in a cookie:
only a same-origin page can read it (the server grants no CORS).

Sign-in itself takes only a JSON body, which a cross-site form cannot send, so no other
site can sign a visitor in to an account of its choosing (login CSRF). A renewed token
(``chat.signin`` reissues one when half its life is gone) is set on whatever response the
request got, by the ``after_request`` hook here.
"""

from __future__ import annotations

from typing import Any

from quart import Response, g, request
from quart_trio import QuartTrio

from chorusline.chat import ChatService, PageSession
from chorusline.protocols import InvalidRequest, Unauthorized
from chorusline.web.admin import require_json
from chorusline.web.conversations import object_body
from chorusline.web.http import SESSION_COOKIE, authenticate, json_response
from chorusline.web.me import user_view


def set_cookie(response: Response, session: PageSession) -> None:
    response.set_cookie(SESSION_COOKIE, session.token, expires=session.expires,
                        httponly=True, samesite="Lax", secure=request.scheme == "https",
                        path="/")


def session_view(session: PageSession) -> dict[str, Any]:
    return {"object": "session", "user": user_view(session.user),
            "csrf_token": session.csrf, "expires_at": int(session.expires.timestamp())}


def register(app: QuartTrio, chat: ChatService) -> None:
    @app.post("/v1/auth/login")
    async def login() -> Response:
        require_json()
        body = await object_body({"name", "password"})
        name, password = body.get("name"), body.get("password")
        for field, value in (("name", name), ("password", password)):
            if not isinstance(value, str) or not value:
                raise InvalidRequest(f"{field} is required", param=field)
        assert isinstance(name, str) and isinstance(password, str)
        session = await chat.accounts.sign_in(name, password, request.remote_addr or "")
        response = json_response(session_view(session))
        set_cookie(response, session)
        return response

    @app.get("/v1/auth/session")
    async def current_session() -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise Unauthorized("not signed in")
        session = await chat.accounts.session(token)
        response = json_response(session_view(session))
        if session.renewed:
            set_cookie(response, session)
        return response

    @app.post("/v1/auth/logout")
    async def logout() -> Response:
        await authenticate(chat)  # a cookie session needs its CSRF header here too
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await chat.accounts.sign_out(token)
        response = json_response({"object": "session.ended", "signed_out": True})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.after_request
    async def renew(response: Response) -> Response:
        session = g.get("renewed_session")
        if isinstance(session, PageSession) and SESSION_COOKIE not in response.headers.get(
                "Set-Cookie", ""):
            set_cookie(response, session)
        return response

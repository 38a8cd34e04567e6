"""Page sessions on a real server: sign-in sets a locked-down cookie, the cookie reaches
the same conversations as the user's API keys, every state change needs the CSRF header,
logout (and a disabled account, and a new password) kill the old cookie, guessing is
throttled, and sign-in takes only JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from chorusline.chat import signin
from tests.web.conftest import Web

PASSWORD = "correct horse"


@asynccontextmanager
async def browser(web: Web) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a cookie jar, like a browser on the page's origin."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web.port}", timeout=60) as c:
        yield c


async def signed_in(web: Web, client: httpx.AsyncClient, name: str = "ann") -> str:
    """Sign ``name`` in (creating the account); the session's CSRF token."""
    if await web.chat.accounts.user_named(name) is None:
        await web.chat.accounts.create_person(name, PASSWORD)
    response = await client.post("/v1/auth/login", json={"name": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


async def test_sign_in_sets_a_locked_down_cookie_that_reaches_your_conversations(
        web: Web) -> None:
    async with browser(web) as client:
        response = await client.post("/v1/auth/login",
                                     json={"name": "ann", "password": PASSWORD})
        assert response.status_code == 401  # no such account yet
        csrf = await signed_in(web, client)
        cookie = client.cookies.jar
        (session,) = [c for c in cookie if c.name == "chorusline_session"]
        assert session.path == "/" and not session.secure  # plain http here
        second = await client.post("/v1/auth/login", json={"name": "ann",
                                                            "password": PASSWORD})
        header, csrf = second.headers["set-cookie"], second.json()["csrf_token"]
        assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
        me = (await client.get("/v1/me")).json()
        assert me["name"] == "ann"
        refused = await client.post("/v1/conversations", json={"title": "no header"})
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.text
        wrong = await client.post("/v1/conversations", json={"title": "x"},
                                  headers={"X-CSRF-Token": "not it"})
        assert wrong.status_code == 403
        made = await client.post("/v1/conversations", json={"title": "from the page"},
                                 headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201, made.text
        current = (await client.get("/v1/auth/session")).json()
        assert current["user"]["id"] == me["id"] and current["csrf_token"]
    key = (await web.chat.accounts.create_api_key(me["id"], tier="big")).plaintext
    async with httpx.AsyncClient(base_url=web.base_url, timeout=60) as api:
        listed = (await api.get("/conversations",
                                headers={"Authorization": f"Bearer {key}"})).json()
        assert [c["title"] for c in listed["data"]] == ["from the page"]


async def test_logout_kills_the_cookie_even_if_it_is_kept(web: Web) -> None:
    async with browser(web) as client:
        csrf = await signed_in(web, client)
        stolen = client.cookies.get("chorusline_session")
        assert (await client.post("/v1/auth/logout")).status_code == 403  # CSRF too
        out = await client.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 200 and client.cookies.get("chorusline_session") is None
    async with browser(web) as thief:
        thief.cookies.set("chorusline_session", stolen or "")
        assert (await thief.get("/v1/me")).status_code == 401
        assert (await thief.get("/v1/auth/session")).status_code == 401


async def test_a_disabled_account_or_a_new_password_ends_the_session(web: Web) -> None:
    async with browser(web) as client:
        await signed_in(web, client)
        user = await web.chat.accounts.user_named("ann")
        assert user is not None
        await web.chat.accounts.set_password(user.id, "battery staple")
        assert (await client.get("/v1/me")).status_code == 401
        response = await client.post("/v1/auth/login", json={
            "name": "ann", "password": "battery staple"})
        assert response.status_code == 200
        await web.chat.accounts.set_disabled(user.id)
        assert (await client.get("/v1/me")).status_code == 401
        again = await client.post("/v1/auth/login", json={
            "name": "ann", "password": "battery staple"})
        assert again.status_code == 401


async def test_guessing_is_throttled_and_sign_in_takes_only_json(web: Web) -> None:
    await web.chat.accounts.create_person("ann", PASSWORD)
    async with browser(web) as client:
        for _ in range(signin.PER_NAME):
            wrong = await client.post("/v1/auth/login",
                                      json={"name": "ann", "password": "guess guess"})
            assert wrong.status_code == 401
            assert wrong.json()["error"]["message"] == "wrong name or password"
        blocked = await client.post("/v1/auth/login", json={"name": "ann",
                                                            "password": PASSWORD})
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
        for content_type, body in (("application/x-www-form-urlencoded",
                                    "name=bob&password=whatever1"),
                                   ("text/plain", '{"name": "bob", "password": "x"}')):
            form = await client.post("/v1/auth/login", content=body,
                                     headers={"Content-Type": content_type})
            assert form.status_code == 415, form.text
        for body, param in (({"name": "ann"}, "password"), ({"password": "x"}, "name"),
                            ({"name": "ann", "password": "x", "remember": True},
                             "remember")):
            response = await client.post("/v1/auth/login", json=body)
            assert response.status_code == 400 and response.json()["error"]["param"] == param


async def test_a_session_in_use_is_renewed(web: Web, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    async with browser(web) as client:
        await signed_in(web, client)
        before = client.cookies.get("chorusline_session")
        # Its 30 minutes are now less than half of a (pretend) longer lifetime.
        monkeypatch.setattr(signin, "SESSION_SECONDS", 10 * 60 * 60)
        response = await client.get("/v1/me")
        assert response.status_code == 200
        assert "chorusline_session=" in response.headers["set-cookie"]
        after = client.cookies.get("chorusline_session")
        assert after and after != before
        assert (await client.get("/v1/me")).status_code == 200

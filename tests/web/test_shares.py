"""Share links over real HTTP: made, read back, refreshed (the old link dies), revoked,
built from the server's own address or its public URL, and opened by a browser as a page
while programs keep getting JSON."""

from __future__ import annotations

from quart_trio import QuartTrio

from chorusline.web import shares
from tests.web.conftest import Web, api
from tests.web.test_conversations import error_of

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def shared_conversation(web: Web) -> tuple[str, dict[str, object]]:
    cid = (await api(web, "POST", "/conversations", json={"title": "Tea"})).json()["id"]
    share = await api(web, "POST", f"/conversations/{cid}/share")
    assert share.status_code == 200, share.text
    return cid, share.json()


async def test_the_current_link_is_read_back_with_when_it_was_made(web: Web) -> None:
    cid = (await api(web, "POST", "/conversations")).json()["id"]
    none = await api(web, "GET", f"/conversations/{cid}/share")
    assert none.status_code == 404 and error_of(none)["code"] == "not_found"
    _, made = await shared_conversation(web)
    cid = str(made["conversation_id"])
    current = await api(web, "GET", f"/conversations/{cid}/share")
    assert current.status_code == 200 and current.json() == made
    assert isinstance(made["created_at"], int) and made["created_at"] > 0


async def test_sharing_again_gives_a_fresh_link_and_kills_the_old_one(web: Web) -> None:
    cid, first = await shared_conversation(web)
    await api(web, "PATCH", f"/conversations/{cid}", json={"title": "Coffee"})
    second = (await api(web, "POST", f"/conversations/{cid}/share")).json()
    assert second["token"] != first["token"]
    old = await api(web, "GET", f"/shared/{first['token']}", auth=False)
    assert old.status_code == 404
    new = await api(web, "GET", f"/shared/{second['token']}", auth=False)
    assert new.json()["title"] == "Coffee"  # the snapshot is of now
    assert (await api(web, "GET", f"/conversations/{cid}/share")).json() == second
    assert (await api(web, "DELETE", f"/conversations/{cid}/share")).status_code == 200
    assert (await api(web, "GET", f"/conversations/{cid}/share")).status_code == 404
    assert (await api(web, "GET", f"/shared/{second['token']}", auth=False)).status_code == 404


async def test_a_browser_gets_the_page_and_a_program_gets_json(web: Web) -> None:
    _, made = await shared_conversation(web)
    path = f"/shared/{made['token']}"
    page = await api(web, "GET", path, auth=False, headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["vary"] == "Accept"
    assert "shared.js" in page.text and "Tea" not in page.text  # a shell: data via JSON
    for accept in ("application/json", "*/*", None):
        sent = {"Accept": accept} if accept else {}
        data = await api(web, "GET", path, auth=False, headers=sent)
        assert data.status_code == 200 and data.json()["title"] == "Tea", accept
        assert data.headers["vary"] == "Accept"
    gone = await api(web, "GET", "/shared/nosuchtoken", auth=False,
                     headers={"Accept": BROWSER_ACCEPT})
    assert gone.status_code == 404 and gone.headers["content-type"].startswith("text/html")


async def test_share_links_ignore_the_host_header(web: Web) -> None:
    """A client's ``Host`` must not choose where a share link points (it could point it
    at a look-alike site); by default the link is the server's bound address."""
    cid = (await api(web, "POST", "/conversations")).json()["id"]
    share = await api(web, "POST", f"/conversations/{cid}/share",
                      headers={"Host": "evil.example"})
    assert share.status_code == 200, share.text
    token = share.json()["token"]
    assert share.json()["url"] == f"http://127.0.0.1:{web.port}/v1/shared/{token}"


async def test_share_links_start_with_the_configured_public_url(web: Web) -> None:
    app = QuartTrio("share-links")
    shares.register(app, web.chat, public_url="https://chat.example/base/")
    cid = (await api(web, "POST", "/conversations")).json()["id"]
    response = await app.test_client().post(
        f"/v1/conversations/{cid}/share",
        headers={"Authorization": f"Bearer {web.key}", "Host": "evil.example"})
    assert response.status_code == 200
    body = await response.get_json()
    assert body["url"] == f"https://chat.example/base/v1/shared/{body['token']}"

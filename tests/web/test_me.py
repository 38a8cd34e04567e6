"""``/v1/me`` on a real server: the caller's own account, and custom instructions that
reach the next stored turn's prompt (and only the owner's)."""

from __future__ import annotations

from tests.web.conftest import Web, api


async def test_custom_instructions_are_read_set_and_cleared(web: Web) -> None:
    me = await api(web, "GET", "/me")
    assert me.status_code == 200, me.text
    assert me.json()["id"] == web.user_id and me.json()["custom_instructions"] is None
    assert me.json()["object"] == "user"
    set_ = await api(web, "PATCH", "/me", json={"custom_instructions": "Answer in French."})
    assert set_.status_code == 200 and set_.json()["custom_instructions"] == \
        "Answer in French."
    assert (await api(web, "GET", "/me")).json()["custom_instructions"] == "Answer in French."
    user = web.chat.store.create_user("other")
    other = web.chat.store.create_api_key(user.id, tier="big").plaintext
    assert (await api(web, "GET", "/me", key=other)).json()["custom_instructions"] is None
    cleared = await api(web, "PATCH", "/me", json={"custom_instructions": ""})
    assert cleared.json()["custom_instructions"] is None
    assert (await api(web, "GET", "/me", auth=False)).status_code == 401


async def test_bad_bodies_change_nothing(web: Web) -> None:
    await api(web, "PATCH", "/me", json={"custom_instructions": "keep"})
    for body, param in (({}, "custom_instructions"), ({"name": "x"}, "name"),
                        ({"custom_instructions": 3}, "custom_instructions"),
                        ({"custom_instructions": "x" * 100_001}, "custom_instructions")):
        response = await api(web, "PATCH", "/me", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == param
    assert (await api(web, "PATCH", "/me")).status_code == 400
    assert (await api(web, "GET", "/me")).json()["custom_instructions"] == "keep"


async def test_the_next_stored_turn_is_told_them(web: Web) -> None:
    async def prompt_tokens() -> int:
        cid = (await api(web, "POST", "/conversations", json={"title": "t"})).json()["id"]
        turn = await api(web, "POST", f"/conversations/{cid}/messages",
                         json={"content": "Hi", "max_tokens": 2})
        assert turn.status_code == 200, turn.text
        return web.handles[-1].prompt_tokens

    plain = await prompt_tokens()
    # Long enough to outweigh the template's default system prompt, which they replace.
    await api(web, "PATCH", "/me", json={
        "custom_instructions": " ".join(["Always end your answer with BANANA."] * 10)})
    told = await prompt_tokens()
    assert told >= plain + 40  # the same first turn, with the instructions in its prompt
    await api(web, "PATCH", "/me", json={"custom_instructions": None})
    assert await prompt_tokens() == plain

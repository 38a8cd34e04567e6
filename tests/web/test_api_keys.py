"""``/v1/me/api_keys`` and ``/v1/me/usage`` on a real server: a signed-in person makes,
lists and revokes their keys (a key cannot mint keys), never reaches another's, and
reads this month's usage from the turns actually recorded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chorusline.protocols import InvalidRequest
from chorusline.web.api_keys import month_bounds
from tests.web.conftest import MODEL, Web, api
from tests.web.test_sessions import browser, signed_in


async def test_a_person_makes_lists_and_revokes_keys(web: Web) -> None:
    async with browser(web) as page:
        csrf = await signed_in(web, page)
        made = await page.post("/v1/me/api_keys", headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201, made.text
        key = made.json()
        assert key["key"].startswith(key["prefix"]) and key["active"]
        assert key["tier"] == "big"  # the account's tier, not an admin key
        me = await api(web, "GET", "/me", key=key["key"])
        assert me.status_code == 200 and me.json()["name"] == "ann"
        listed = (await page.get("/v1/me/api_keys")).json()["data"]
        assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0]
        # The key itself may list, but not mint or revoke.
        assert (await api(web, "GET", "/me/api_keys", key=key["key"])).status_code == 200
        for method, path in (("POST", "/me/api_keys"),
                             ("DELETE", f"/me/api_keys/{key['id']}")):
            refused = await api(web, method, path, key=key["key"])
            assert refused.status_code == 403, (method, refused.text)
        unguarded = await page.delete(f"/v1/me/api_keys/{key['id']}")
        assert unguarded.status_code == 403  # no CSRF header: refused, key still live
        revoked = await page.delete(f"/v1/me/api_keys/{key['id']}",
                                    headers={"X-CSRF-Token": csrf})
        assert revoked.status_code == 200 and revoked.json()["active"] is False
        assert (await api(web, "GET", "/me", key=key["key"])).status_code == 401


async def test_another_users_key_is_not_found(web: Web) -> None:
    theirs = web.chat.store.create_api_key(web.user_id, tier="big").key
    async with browser(web) as page:
        csrf = await signed_in(web, page)
        listed = (await page.get("/v1/me/api_keys")).json()["data"]
        assert theirs.id not in [k["id"] for k in listed]
        for key_id in (theirs.id, "no-such-key", "bad%20id"):
            response = await page.delete(f"/v1/me/api_keys/{key_id}",
                                         headers={"X-CSRF-Token": csrf})
            assert response.status_code == 404, (key_id, response.text)
    assert web.chat.store.authenticate_api_key(web.key) is not None


async def test_usage_counts_this_months_turns(web: Web) -> None:
    empty = (await api(web, "GET", "/me/usage")).json()
    assert (empty["requests"], empty["total_tokens"]) == (0, 0)
    now = datetime.now(UTC)
    assert empty["month"] == f"{now.year:04d}-{now.month:02d}"
    turn = await api(web, "POST", "/chat/completions", json={
        "model": MODEL, "max_tokens": 3, "temperature": 0,
        "messages": [{"role": "user", "content": "Hi"}]})
    assert turn.status_code == 200, turn.text
    spent = turn.json()["usage"]
    await web.handles[-1].persisted.wait()
    usage = (await api(web, "GET", "/me/usage")).json()
    assert usage["requests"] == 1
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        spent["prompt_tokens"], spent["completion_tokens"], spent["total_tokens"])
    (mine,) = [k for k in usage["keys"] if k["requests"]]
    assert mine["total_tokens"] == spent["total_tokens"]
    before = (await api(web, "GET", "/me/usage?month=2001-01")).json()
    assert before["requests"] == 0 and before["end_time"] - before["start_time"] == 31 * 86400
    for month in ("2026-13", "26-12", "december", "1969-12"):
        bad = await api(web, "GET", f"/me/usage?month={month}")
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "month", month


def test_a_month_ends_where_the_next_begins() -> None:
    now = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert month_bounds(None, now) == (datetime(2026, 12, 1, tzinfo=UTC),
                                       datetime(2027, 1, 1, tzinfo=UTC))
    assert month_bounds("2024-02", now)[1] == datetime(2024, 3, 1, tzinfo=UTC)
    with pytest.raises(InvalidRequest):
        month_bounds("2024-00", now)

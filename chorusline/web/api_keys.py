"""A person's own API keys and usage: ``/v1/me/api_keys`` and ``/v1/me/usage``.

Anyone signed in either way may list their keys and read their usage. Creating and
revoking a key takes a page session (a password sign-in): a key that could mint keys
would let whoever leaked it make a successor that outlives its revocation, so a bearer
key asking is a 403. A new key gets the tier of the account that makes it, never an
admin flag (operators make those with ``chorusline keys create --admin``).

Usage is counted per calendar month in UTC, from the usage events every turn records:
the total covers everything the user did (keys and page alike), ``keys`` each key's part.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from chorusline.chat import ApiKey, ChatService, Principal, UsageTotals
from chorusline.protocols import InvalidRequest, PermissionDenied
from chorusline.web import conversation_views as views
from chorusline.web.conversations import object_body
from chorusline.web.http import authenticate, json_response

_MONTH = re.compile(r"(\d{4})-(\d{2})")


def key_view(key: ApiKey) -> dict[str, Any]:
    """A key as its owner sees it: the prefix names it, the secret is never shown again."""
    return {"object": "api_key", "id": key.id, "prefix": key.prefix, "tier": key.tier,
            "created_at": int(key.created.timestamp()),
            "revoked_at": None if key.revoked_at is None else int(key.revoked_at.timestamp()),
            "active": key.active}


def totals_view(totals: UsageTotals) -> dict[str, int]:
    return {"requests": totals.requests, "prompt_tokens": totals.prompt_tokens,
            "completion_tokens": totals.completion_tokens,
            "total_tokens": totals.prompt_tokens + totals.completion_tokens}


def month_bounds(text: str | None, now: datetime) -> tuple[datetime, datetime]:
    """``[first of the month, first of the next)`` for ``YYYY-MM``, this month if None."""
    if text is None:
        year, month = now.year, now.month
    else:
        match = _MONTH.fullmatch(text)
        if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1970:
            raise InvalidRequest("month must be YYYY-MM (e.g. 2026-12)", param="month")
        year, month = int(match[1]), int(match[2])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def person(principal: Principal, what: str) -> Principal:
    if not principal.page_session:
        raise PermissionDenied(f"{what} an API key takes a signed-in person (the page's "
                               "session), not another API key")
    return principal


def register(app: QuartTrio, chat: ChatService) -> None:
    @app.get("/v1/me/api_keys")
    async def list_keys() -> Response:
        principal = await authenticate(chat)
        keys = await chat.accounts.list_api_keys(principal.user_id)
        return json_response(views.listing([key_view(k) for k in keys]))

    @app.post("/v1/me/api_keys")
    async def create_key() -> Response:
        principal = person(await authenticate(chat), "creating")
        await object_body(set(), required=False)  # nothing to say yet: {} or no body
        issued = await chat.accounts.create_api_key(principal.user_id, tier=principal.tier.name)
        return json_response({**key_view(issued.key), "key": issued.plaintext}, 201)

    @app.delete("/v1/me/api_keys/<key_id>")
    async def revoke_key(key_id: str) -> Response:
        principal = person(await authenticate(chat), "revoking")
        key = await chat.accounts.revoke_api_key(principal.user_id,
                                            views.checked_id(key_id, "key_id"))
        return json_response(key_view(key))

    @app.get("/v1/me/usage")
    async def usage() -> Response:
        principal = await authenticate(chat)
        month = request.args.get("month")
        start, end = month_bounds(month, datetime.now(UTC))
        total, keys = await chat.accounts.usage(principal.user_id, start, end)
        return json_response({
            "object": "usage", "month": f"{start.year:04d}-{start.month:02d}",
            "start_time": int(start.timestamp()), "end_time": int(end.timestamp()),
            **totals_view(total),
            "keys": [{"api_key_id": key.id, "prefix": key.prefix, **totals_view(part)}
                     for key, part in keys],
        })

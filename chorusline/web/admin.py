"""The admin API (``/v1/admin/...``): what the supervisor console reads and does.

Every route needs an API key with the admin flag (``chorusline keys create --admin``, or
the key the first start prints): no key is a 401 like everywhere else, a valid key
without the flag is a 403 (``insufficient_permissions``). Unlike conversation ids, the
routes themselves are no secret, so refusing with 403 rather than 404 leaks nothing and
tells an operator with the wrong key what is wrong.

The routes only read what the actor system already publishes (the tree snapshot, the
GPU worker's ``GetStats``) and drive its fault injector, through ``chat.admin`` (the
``Admin`` facade); nothing here holds the actor system or reaches into an actor. Each
answer names the process that served it (``worker_pid``): with ``chorusline serve
--workers N`` every worker has its own actor tree, so a fault injected through one
connection touches only the worker that took it.

Bodies are checked strictly (unknown fields, a field the action does not use, a wrong
type or range: 400), so a misspelt fault never silently does something else.
"""

from __future__ import annotations

import math
import os
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from chorusline.chat import ChatService
from chorusline.protocols import InvalidRequest, PermissionDenied
from chorusline.web.http import HttpError, authenticate, json_body, json_response

#: The fields each fault action takes besides ``path`` and ``action``.
ACTION_FIELDS: dict[str, frozenset[str]] = {
    "crash": frozenset({"on_message"}),
    "delay": frozenset({"seconds"}),
    "drop": frozenset({"fraction", "seed"}),
    "kill": frozenset(),
}
#: A delay longer than this is a typo (milliseconds meant), not a plan.
MAX_DELAY_SECONDS = 3600.0


def _number(body: dict[str, Any], name: str, *, low: float, high: float) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a number", param=name)
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be within [{low:g}, {high:g}]", param=name)
    return float(value)


def _integer(body: dict[str, Any], name: str, *, low: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be an integer", param=name)
    if low is not None and value < low:
        raise InvalidRequest(f"{name} must be at least {low}", param=name)
    return value


def _actor_path(value: object, param: str = "path") -> str:
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 1024:
        raise InvalidRequest("path must be an actor path such as "
                             "'/chat/conversations/conv-<id>'", param=param)
    return value


def parse_fault(body: object) -> dict[str, Any]:
    """A POST /v1/admin/faults body as keyword arguments for ``Admin.inject_fault``."""
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    action = body.get("action")
    if not isinstance(action, str) or action not in ACTION_FIELDS:
        raise InvalidRequest(f"action must be one of {', '.join(ACTION_FIELDS)}",
                             param="action")
    extra = set(body) - {"path", "action"} - ACTION_FIELDS[action]
    if extra:
        name = sorted(extra)[0]
        raise InvalidRequest(f"{name!r} does not apply to a {action!r} fault", param=name)
    fault: dict[str, Any] = {"path": _actor_path(body.get("path")), "action": action}
    if action == "crash":
        fault["on_message"] = _integer(body, "on_message", low=1) or 1
    elif action == "delay":
        fault["seconds"] = _number(body, "seconds", low=0.0, high=MAX_DELAY_SECONDS)
    elif action == "drop":
        fault["fraction"] = _number(body, "fraction", low=0.0, high=1.0)
        fault["seed"] = _integer(body, "seed")
    return fault


async def require_admin(chat: ChatService) -> None:
    principal = await authenticate(chat)
    if not principal.admin:
        raise PermissionDenied("this route needs an API key with the admin flag "
                               "('chorusline keys create --admin')")


def require_json() -> None:
    """A state-changing admin call must say its body is JSON. A cross-site form can only
    send form or plain-text bodies (anything else needs a CORS preflight, which this
    server never grants), so this refuses it before the body is read: a second lock
    behind the bearer key, which no other site can make a browser send."""
    if request.mimetype != "application/json":
        raise HttpError(415, "this route takes an 'application/json' body "
                             f"(got {request.mimetype or 'none'!r})")


def _query_int(name: str, default: int, *, low: int, high: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer", param=name) from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be within [{low}, {high}]", param=name)
    return value


def answer(kind: str, data: dict[str, Any]) -> Response:
    return json_response({"object": kind, "worker_pid": os.getpid(), **data})


def register(app: QuartTrio, chat: ChatService) -> None:
    """Add the admin routes to ``app``."""
    admin = chat.admin

    async def require_admin_key() -> None:
        await require_admin(chat)

    @app.get("/v1/admin/actors")
    async def admin_actors() -> Response:
        await require_admin_key()
        return answer("admin.actors", admin.snapshot())

    @app.get("/v1/admin/engine")
    async def admin_engine() -> Response:
        await require_admin_key()
        return answer("admin.engine", await admin.engine_stats(request.args.get("model")))

    @app.get("/v1/admin/faults")
    async def admin_faults() -> Response:
        await require_admin_key()
        return answer("admin.faults", {"active": admin.active_faults()})

    @app.post("/v1/admin/faults")
    async def admin_inject_fault() -> Response:
        await require_admin_key()
        if not (await request.get_data(as_text=False)).strip():
            raise InvalidRequest("this route needs a JSON object body; none was sent")
        require_json()
        fault = parse_fault(await json_body())
        admin.inject_fault(**fault)
        return answer("admin.fault", {"path": fault["path"], "action": fault["action"],
                                      "active": admin.active_faults()})

    @app.delete("/v1/admin/faults")
    async def admin_clear_faults() -> Response:
        await require_admin_key()
        path = request.args.get("path")
        cleared = admin.clear_faults(None if path is None else _actor_path(path))
        return answer("admin.faults", {"cleared": cleared, "active": admin.active_faults()})

    @app.get("/v1/admin/actors/children")
    async def admin_children() -> Response:
        await require_admin_key()
        page = admin.children(
            _actor_path(request.args.get("path", "/")), request.args.get("q", "")[:200],
            _query_int("offset", 0, low=0, high=10_000_000),
            _query_int("limit", 50, low=1, high=500))
        return answer("admin.children", page)

    @app.get("/v1/admin/actors/detail")
    async def admin_detail() -> Response:
        await require_admin_key()
        return answer("admin.actor", admin.detail(_actor_path(request.args.get("path"))))

    @app.get("/v1/admin/traces")
    async def admin_traces() -> Response:
        await require_admin_key()
        return answer("admin.traces", admin.traces())

    @app.get("/v1/admin/traces/<request_id>")
    async def admin_trace(request_id: str) -> Response:
        await require_admin_key()
        return answer("admin.trace", admin.trace(request_id))

    @app.post("/v1/admin/requests/<request_id>/abort")
    async def admin_abort(request_id: str) -> Response:
        await require_admin_key()
        require_json()
        body = await json_body() if (await request.get_data(as_text=False)).strip() else {}
        if body != {}:
            raise InvalidRequest("this route takes an empty JSON object body")
        return answer("admin.abort", await admin.abort(request_id))

"""The admin routes' part of the OpenAPI document (merged in by ``openapi_spec``).

Kept apart from ``openapi_spec`` so the admin API's contract sits next to nothing else
and that module only has to splice it in. Error responses point at the document's
shared ``Error`` schema. The tree node schema is not recursive (children are plain
objects): the snapshot's fields are described one level deep, which is what clients
and schemathesis need, without a self-referencing component.
"""

from __future__ import annotations

from typing import Any

from chorusline.web.openapi_common import BEARER

Schema = dict[str, Any]
JSON = "application/json"
INT = {"type": "integer"}
NUM = {"type": "number"}
STR = {"type": "string"}

_ERRORS: dict[int, str] = {
    400: "Invalid body or query (`invalid_request_error`): unknown action, a field the "
         "action does not take, a value out of range, or a thread actor given anything "
         "but `kill`.",
    401: "Missing, unknown or revoked API key (`invalid_api_key`).",
    403: "A valid key without the admin flag (`invalid_request_error` / "
         "`insufficient_permissions`).",
    404: "No live actor (or, for DELETE, no fault plan) at `path`, or no recent request "
         "with that id (`not_found`).",
    409: "The request's generation already ended: nothing to abort (`conflict`).",
    415: "A state-changing call without an `application/json` body (how a cross-site "
         "form post is refused).",
}


def _errors(*statuses: int) -> dict[str, Schema]:
    return {str(s): {"description": _ERRORS[s],
                     "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for s in statuses}


def _obj(properties: dict[str, Schema], required: list[str]) -> Schema:
    return {"type": "object", "properties": properties, "required": required}


def _reply(kind: str, description: str, properties: dict[str, Schema]) -> Schema:
    schema = _obj({"object": {"const": kind},
                   "worker_pid": {**INT, "description": "The serving process (one of "
                                                        "several with --workers)."},
                   **properties},
                  ["object", "worker_pid", *properties])
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _op(summary: str, ok: Schema, *errors: int, **extra: Any) -> Schema:
    return {"summary": summary, "security": BEARER, "tags": ["admin"],
            "responses": {"200": ok, **_errors(401, 403, *errors)}, **extra}


ACTOR_NODE = _obj({
    "path": STR, "name": STR, "kind": {"enum": ["actor", "supervisor", "thread"]},
    "actor_class": STR, "state": {"enum": ["starting", "running", "stopping", "dead"]},
    "mailbox_depth": INT, "mailbox_capacity": INT, "processed": INT, "failed": INT,
    "restarts": INT, "last_failure": {"type": ["object", "null"]},
    "exit_reason": {"type": ["string", "null"]},
    "children": {"type": "array", "items": {"type": "object"},
                 "description": "Nodes of the same shape."},
}, ["path", "name", "kind", "state", "mailbox_depth", "processed", "failed", "restarts",
    "children"])
DRIVER = {"type": ["object", "null"], "properties": {
    "queue_depth": INT, "inflight": INT, "steps": INT, "requeued": INT, "refused": INT,
    "prefill_rate": NUM, "running": INT, "kv_usage": NUM, "last_batch_size": INT,
    "max_batch_size": INT, "mean_batch_size": NUM}}
ENGINE = {"type": ["object", "null"], "properties": {
    "num_running": INT, "num_waiting": INT, "kv_blocks_total": INT, "kv_blocks_used": INT,
    "kv_blocks_free": INT, "kv_usage": NUM, "steps": INT, "generated_tokens": INT,
    "max_sequence_tokens": INT}}
FAULT_PLANS = {"type": "object", "additionalProperties": _obj(
    {"crash_after": {"type": ["integer", "null"]}, "delay": NUM, "drop_fraction": NUM},
    ["crash_after", "delay", "drop_fraction"]),
    "description": "Fault plans in force, by actor path."}
FAULT_BODY: Schema = {
    "type": "object", "additionalProperties": False, "required": ["path", "action"],
    "properties": {
        "path": {**STR, "pattern": "^/", "maxLength": 1024,
                 "description": "A live actor's path, e.g. `/chat/conversations/conv-<id>`."},
        "action": {"enum": ["crash", "delay", "drop", "kill"],
                   "description": "crash: on its `on_message`-th next message (then "
                                  "restarted by its supervisor); delay: every message by "
                                  "`seconds`; drop: that `fraction` of messages; kill: now. "
                                  "Thread actors take only kill."},
        "on_message": {"type": ["integer", "null"], "minimum": 1,
                       "description": "crash only; default 1."},
        "seconds": {**NUM, "minimum": 0, "maximum": 3600, "description": "delay only."},
        "fraction": {**NUM, "minimum": 0, "maximum": 1, "description": "drop only."},
        "seed": {"type": ["integer", "null"], "description": "drop only."},
    },
}


TRACE = _obj({
    "request_id": STR, "state": {"enum": ["accepted", "queued", "prefill", "decode",
                                          "streaming", "finished"]},
    "started": NUM, "age_ms": NUM, "prompt_tokens": INT, "generated_tokens": INT,
    "ttft_ms": {"type": ["number", "null"]}, "status": {"type": ["string", "null"]},
    "finish_reason": {"type": ["string", "null"]},
    "spans": {"type": "array", "items": _obj(
        {"name": STR, "path": STR, "start_ms": NUM, "end_ms": NUM, "duration_ms": NUM},
        ["name", "path", "start_ms", "end_ms", "duration_ms"])},
}, ["request_id", "state", "started", "age_ms", "prompt_tokens", "generated_tokens",
    "spans"])
FLAT_NODE = {**ACTOR_NODE, "required": [r for r in ACTOR_NODE["required"] if r != "children"]}


def _query(name: str, schema: Schema, description: str, *, required: bool = False
           ) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


def console_paths() -> dict[str, Schema]:
    """The console's routes: the feed, pages of children, one actor, traces, abort."""
    actor = _query("path", {**STR, "pattern": "^/", "maxLength": 1024}, "An actor's path.",
                   required=True)
    request_id = {"name": "request_id", "in": "path", "required": True, "schema": STR}
    return {
        "/v1/admin/events": {"get": _op(
            "The console feed (server-sent events: hello, snapshot, event, trace, gap; "
            "see docs/console.md)",
            {"description": "An event stream that ends when the client goes",
             "content": {"text/event-stream": {"schema": STR}}}, 400,
            parameters=[_query("interval", {**NUM, "minimum": 0.25, "maximum": 10},
                               "Seconds between snapshots (default 1).")])},
        "/v1/admin/actors/children": {"get": _op(
            "A page of an actor's children whose name contains `q`",
            _reply("admin.children", "One page", {
                "path": STR, "total": INT, "matched": INT, "offset": INT,
                "children": {"type": "array", "items": FLAT_NODE}}), 400, 404,
            parameters=[actor, _query("q", STR, "Part of a child's name."),
                        _query("offset", {**INT, "minimum": 0, "maximum": 10_000_000}, ""),
                        _query("limit", {**INT, "minimum": 1, "maximum": 500}, "")])},
        "/v1/admin/actors/detail": {"get": _op(
            "One live actor: statistics, current message, watchers, restart history",
            _reply("admin.actor", "The actor", {
                "node": FLAT_NODE, "current_message": {"type": ["string", "null"]},
                "watchers": {"type": "array", "items": STR},
                "watching": {"type": "array", "items": STR},
                "restart_history": {"type": "array", "items": {"type": "object"}}}),
            400, 404, parameters=[actor])},
        "/v1/admin/traces": {"get": _op(
            "In-flight and recently finished turn traces",
            _reply("admin.traces", "Traces", {
                "live": {"type": "array", "items": TRACE},
                "finished": {"type": "array", "items": TRACE}}))},
        "/v1/admin/traces/{request_id}": {"get": _op(
            "One request's trace (in flight or recent)",
            {"description": "The trace", "content": {JSON: {"schema": TRACE}}}, 404,
            parameters=[request_id])},
        "/v1/admin/requests/{request_id}/abort": {"post": _op(
            "End an in-flight request's generation (finish_reason `abort`)",
            _reply("admin.abort", "Aborted", {"request_id": STR, "aborted": {"const": True}}),
            400, 404, 409, 415, parameters=[request_id],
            requestBody={"required": False, "content": {JSON: {"schema": _obj({}, [])}}})},
    }


def admin_paths() -> dict[str, Schema]:
    """The ``/v1/admin/...`` entries of the document's ``paths``."""
    path_query = {"name": "path", "in": "query", "required": False,
                  "schema": {**STR, "pattern": "^/"},
                  "description": "Clear only this actor's plan (default: all)."}
    return {
        "/v1/admin/actors": {"get": _op(
            "The live actor tree with each actor's statistics",
            _reply("admin.actors", "The actor system's snapshot", {
                "system": STR, "tree": ACTOR_NODE,
                "dead_letters": {"type": "object"}, "faults": FAULT_PLANS,
                "registry_size": INT}))},
        "/v1/admin/engine": {"get": _op(
            "A model's scheduler counters and engine figures (null while its GPU worker "
            "restarts)",
            _reply("admin.engine", "Scheduler and engine statistics",
                   {"model": STR, "driver": DRIVER, "engine": ENGINE}), 404,
            parameters=[_query("model", STR, "A served model's name or alias (default: "
                               "the default model).")])},
        "/v1/admin/faults": {
            "get": _op("The fault plans in force",
                       _reply("admin.faults", "Active plans", {"active": FAULT_PLANS})),
            "post": _op("Inject a fault into a live actor by path",
                        _reply("admin.fault", "The fault was injected",
                               {"path": STR, "action": STR, "active": FAULT_PLANS}),
                        400, 404, 415,
                        requestBody={"required": True,
                                     "content": {JSON: {"schema": FAULT_BODY}}}),
            "delete": _op("Clear fault plans (all, or one actor's)",
                          _reply("admin.faults", "What was cleared",
                                 {"cleared": {"type": "array", "items": STR},
                                  "active": FAULT_PLANS}),
                          400, 404, parameters=[path_query]),
        },
        **console_paths(),
    }

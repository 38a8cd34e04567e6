"""The admin routes' part of the OpenAPI document (merged in by ``openapi_spec``).

Kept apart from ``openapi_spec`` so the admin API's contract sits next to nothing else
and that module only has to splice it in. Error responses point at the document's
shared ``Error`` schema. The tree node schema is not recursive (children are plain
objects): the snapshot's fields are described one level deep, which is what clients
and schemathesis need, without a self-referencing component.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
JSON = "application/json"
INT = {"type": "integer"}
NUM = {"type": "number"}
STR = {"type": "string"}
BEARER: list[Schema] = [{"bearerAuth": []}]

_ERRORS: dict[int, str] = {
    400: "Invalid body or query (`invalid_request_error`): unknown action, a field the "
         "action does not take, a value out of range, or a thread actor given anything "
         "but `kill`.",
    401: "Missing, unknown or revoked API key (`invalid_api_key`).",
    403: "A valid key without the admin flag (`invalid_request_error` / "
         "`insufficient_permissions`).",
    404: "No live actor (or, for DELETE, no fault plan) at `path` (`not_found`).",
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
            "Scheduler counters and engine figures (null while the GPU worker restarts)",
            _reply("admin.engine", "Scheduler and engine statistics",
                   {"driver": DRIVER, "engine": ENGINE}))},
        "/v1/admin/faults": {
            "get": _op("The fault plans in force",
                       _reply("admin.faults", "Active plans", {"active": FAULT_PLANS})),
            "post": _op("Inject a fault into a live actor by path",
                        _reply("admin.fault", "The fault was injected",
                               {"path": STR, "action": STR, "active": FAULT_PLANS}),
                        400, 404,
                        requestBody={"required": True,
                                     "content": {JSON: {"schema": FAULT_BODY}}}),
            "delete": _op("Clear fault plans (all, or one actor's)",
                          _reply("admin.faults", "What was cleared",
                                 {"cleared": {"type": "array", "items": STR},
                                  "active": FAULT_PLANS}),
                          400, 404, parameters=[path_query]),
        },
    }

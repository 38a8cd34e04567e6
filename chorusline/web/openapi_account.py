"""The account part of the OpenAPI document: signing in and out (page sessions), your
own user and custom instructions, your API keys and your usage."""

from __future__ import annotations

from chorusline.web.openapi_common import (
    BEARER,
    INT,
    JSON,
    NULL_INT,
    NULL_STR,
    OPEN,
    STR,
    Schema,
    _errors,
    _json,
    _obj,
    _ref,
)

_TOTALS = {"requests": INT, "prompt_tokens": INT, "completion_tokens": INT,
           "total_tokens": INT}
API_KEY = _obj({"object": {"const": "api_key"}, "id": STR, "prefix": STR, "tier": STR,
                "created_at": INT, "revoked_at": NULL_INT, "active": {"type": "boolean"}},
               ["object", "id", "prefix", "tier", "created_at", "revoked_at", "active"])
USAGE = _obj({"object": {"const": "usage"}, "month": STR, "start_time": INT, "end_time": INT,
              **_TOTALS,
              "keys": {"type": "array", "items": _obj(
                  {"api_key_id": STR, "prefix": STR, **_TOTALS},
                  ["api_key_id", "prefix", *_TOTALS])}},
             ["object", "month", "start_time", "end_time", *_TOTALS, "keys"])


def account_paths() -> dict[str, Schema]:
    key_list = _obj({"object": {"const": "list"}, "data": {"type": "array", "items": API_KEY},
                     "next_cursor": NULL_STR}, ["object", "data"])
    return {
        "/v1/auth/login": {"post": {
            "summary": "Sign in with a name and password (sets the HttpOnly session "
                       "cookie; only JSON bodies, so no cross-site form can)",
            "security": OPEN, "tags": ["account"],
            "requestBody": {"required": True, "content": {JSON: {"schema": _obj(
                {"name": STR, "password": STR}, ["name", "password"], closed=True)}}},
            "responses": {"200": _json("Signed in", _ref("PageSession")),
                          **_errors(400, 401, 415, 429)}}},
        "/v1/auth/session": {"get": {
            "summary": "The cookie's session and its CSRF token (renewed while used)",
            "security": OPEN, "tags": ["account"],
            "responses": {"200": _json("The session", _ref("PageSession")),
                          **_errors(401)}}},
        "/v1/auth/logout": {"post": {
            "summary": "End the session (the cookie is dead server-side from now on)",
            "security": OPEN, "tags": ["account"],
            "responses": {"200": _json("Signed out", _obj(
                {"object": {"const": "session.ended"}, "signed_out": {"const": True}},
                ["object", "signed_out"])), **_errors(401, 403)}}},
        "/v1/me": {
            "get": {"summary": "Your own account and custom instructions",
                    "security": BEARER, "tags": ["account"],
                    "responses": {"200": _json("You", _ref("User")), **_errors(401)}},
            "patch": {"summary": "Set (a string) or clear (null or \"\") your custom "
                                 "instructions, told to every new stored turn",
                      "security": BEARER, "tags": ["account"],
                      "requestBody": {"required": True, "content": {JSON: {"schema": _obj(
                          {"custom_instructions": {**NULL_STR, "maxLength": 100_000}},
                          ["custom_instructions"], closed=True)}}},
                      "responses": {"200": _json("You", _ref("User")),
                                    **_errors(400, 401)}}},
        "/v1/me/api_keys": {
            "get": {"summary": "Your API keys, revoked ones included, oldest first",
                    "security": BEARER, "tags": ["account"],
                    "responses": {"200": _json("Your keys", key_list), **_errors(401)}},
            "post": {"summary": "Make an API key on your account's tier; the secret (`key`) "
                                "is in this answer only. Needs a page session: a key "
                                "cannot mint keys (403)",
                     "security": BEARER, "tags": ["account"],
                     "requestBody": {"required": False, "content": {JSON: {"schema": _obj(
                         {}, [], closed=True)}}},
                     "responses": {"201": _json("The new key", _obj(
                         {**API_KEY["properties"], "key": STR},
                         [*API_KEY["required"], "key"])), **_errors(400, 401, 403)}},
        },
        "/v1/me/api_keys/{key_id}": {
            "parameters": [{"name": "key_id", "in": "path", "required": True,
                            "schema": STR}],
            "delete": {"summary": "Revoke one of your keys (idempotent; a page session "
                                  "only, 403 for a key; 404 for another user's)",
                       "security": BEARER, "tags": ["account"],
                       "responses": {"200": _json("The revoked key", API_KEY),
                                     **_errors(401, 403, 404)}},
        },
        "/v1/me/usage": {"get": {
            "summary": "Your tokens and requests in a calendar month (UTC), in all and "
                       "per API key", "security": BEARER, "tags": ["account"],
            "parameters": [{"name": "month", "in": "query", "required": False,
                            "schema": {**STR, "pattern": "^[0-9]{4}-[0-9]{2}$"},
                            "description": "YYYY-MM; this month when absent"}],
            "responses": {"200": _json("Usage", USAGE), **_errors(400, 401)}}},
    }

"""``GET /v1/models`` and ``GET /v1/models/{model}``: what this server serves.

Every served generation model (the default first) and the embedding model when one is
served (``ChatService.embedding_model``), each as OpenAI's model object plus what
chorusline adds: its ``capabilities`` (``chat``, ``completions``, ``tools`` for a model
with a chat template; ``embeddings``), its ``context_window`` in tokens, its
``aliases`` and its ``fallback`` models. ``created`` is when the app was built (the
models were loaded just before). An alias names its model here too. Both routes need an
API key, as OpenAI's do.
"""

from __future__ import annotations

import time
from typing import Any

from quart import Response
from quart_trio import QuartTrio

from chorusline.chat import ChatService
from chorusline.protocols import ModelNotFound
from chorusline.web.http import authenticate, json_response

OWNER = "chorusline"


def served(chat: ChatService) -> list[dict[str, Any]]:
    """The served models' descriptions (without ``created``), the default first."""
    out: list[dict[str, Any]] = []
    for info in chat.models:
        capabilities = list(info.capabilities) + (["tools"] if "chat" in info.capabilities
                                                  else [])
        out.append({"id": info.name, "capabilities": capabilities,
                    "context_window": info.context_window, "aliases": list(info.aliases),
                    "fallback": list(info.fallback)})
    embedding = chat.embedding_model
    if embedding is not None:
        out.append({"id": embedding, "capabilities": ["embeddings"], "aliases": [],
                    "fallback": []})
    return out


def model_object(description: dict[str, Any], created: int) -> dict[str, Any]:
    return {"id": description["id"], "object": "model", "created": created,
            "owned_by": OWNER, **{k: v for k, v in description.items() if k != "id"}}


def register(app: QuartTrio, chat: ChatService) -> None:
    created = int(time.time())

    @app.get("/v1/models")
    async def models() -> Response:
        await authenticate(chat)
        return json_response({"object": "list",
                              "data": [model_object(m, created) for m in served(chat)]})

    @app.get("/v1/models/<path:model>")
    async def model(model: str) -> Response:
        await authenticate(chat)
        for description in served(chat):
            if model == description["id"] or model in description["aliases"]:
                return json_response(model_object(description, created))
        raise ModelNotFound(f"The model '{model}' does not exist", param="model")

"""``GET /v1/models`` and ``GET /v1/models/{model}``: what this server serves.

The chat model always, and the embedding model when one is served
(``ChatService.embedding_model``), each as OpenAI's model object; ``created`` is when
the app was built (the models were loaded just before). Both need an API key, as
OpenAI's do.
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


def served(chat: ChatService) -> list[str]:
    """The served models' ids, the chat model first."""
    embedding = chat.embedding_model
    return [chat.model_name] + ([] if embedding is None else [embedding])


def model_object(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": OWNER}


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
        if model not in served(chat):
            raise ModelNotFound(f"The model '{model}' does not exist", param="model")
        return json_response(model_object(model, created))

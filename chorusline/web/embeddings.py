"""``POST /v1/embeddings``: an OpenAI body to ``ChatService.embed``, and back.

The route only translates: the body is parsed by the wire module, the model name is
checked against what the service serves (``ModelNotFound`` 404 otherwise, also when the
deployment serves no embedding model), and the vectors leave as little-endian float32,
either as JSON numbers or base64 (the OpenAI SDK asks for base64 by default and decodes
it). Success carries the key's ``x-ratelimit-*`` headers, as chat completions do.
"""

from __future__ import annotations

from quart import Response
from quart_trio import QuartTrio

from chorusline.chat import ChatService
from chorusline.protocols import ModelNotFound, openai_embeddings as wire
from chorusline.web.http import authenticate, json_body, json_response


def register(app: QuartTrio, chat: ChatService) -> None:
    @app.post("/v1/embeddings")
    async def embeddings() -> Response:
        principal = await authenticate(chat)
        parsed = wire.parse_embedding_request(await json_body())
        served = chat.embedding_model
        if served is None or parsed.model != served:
            raise ModelNotFound(f"The model `{parsed.model}` does not exist", param="model")
        result = await chat.embed(principal, parsed.inputs, dimensions=parsed.dimensions,
                                  end_user=parsed.user)
        raw = [row.astype("<f4").tobytes() for row in result.vectors]
        response = json_response(wire.embedding_response(
            raw, parsed.encoding_format, result.model, result.prompt_tokens))
        response.headers.update(result.rate_headers)
        return response

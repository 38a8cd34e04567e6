"""``GET /v1/models`` and ``GET /v1/models/{model}`` with the official SDK."""

from __future__ import annotations

from functools import partial

import openai
import pytest

from tests.web.conftest import MODEL, Web, api
from tests.web.test_openai_sdk import client, in_thread


def served(web: Web) -> list[str]:
    embedding = web.chat.embedding_model
    return [MODEL] + ([] if embedding is None else [embedding])


async def test_the_list_names_the_chat_model_first_and_the_embedding_model(web: Web) -> None:
    models = await in_thread(lambda: client(web).models.list())
    assert [m.id for m in models.data] == served(web)
    assert all(m.object == "model" and m.owned_by == "chorusline" for m in models.data)


async def test_retrieve_gives_openais_model_object(web: Web) -> None:
    sdk = client(web)
    for name in served(web):
        model = await in_thread(partial(sdk.models.retrieve, name))
        assert (model.id, model.object, model.owned_by) == (name, "model", "chorusline")
        assert model.created > 0


async def test_an_unknown_model_is_a_404_in_openais_shape(web: Web) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await in_thread(lambda: client(web).models.retrieve("gpt-9"))
    assert caught.value.code == "model_not_found"
    response = await api(web, "GET", "/models/org/gpt-9")
    assert response.status_code == 404
    assert response.json() == {"error": {
        "message": "The model 'org/gpt-9' does not exist", "type": "invalid_request_error",
        "param": "model", "code": "model_not_found"}}


async def test_both_need_a_key(web: Web) -> None:
    for path in ("/models", f"/models/{MODEL}"):
        response = await api(web, "GET", path, auth=False)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"

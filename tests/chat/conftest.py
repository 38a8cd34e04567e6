"""Fixtures for chat-service tests: the real SmolLM2 model, loaded once per session."""

from __future__ import annotations

import pytest

from chorusline.runtime import LoadedModel, load_model


@pytest.fixture(scope="session")
def chat_model() -> LoadedModel:
    return load_model(progress=False)

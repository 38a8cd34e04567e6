"""The plugin's model fixture, pointed at the suite's own: one model per test run."""

from __future__ import annotations

import pytest

from chorusline.runtime import LoadedModel


@pytest.fixture(scope="session")
def chorusline_model(chat_model: LoadedModel) -> LoadedModel:
    return chat_model

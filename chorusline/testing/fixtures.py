"""Fixtures for applications that embed chorusline: an actor system, a whole chat service.

Everything heavy is imported inside the fixtures: this module is loaded into every pytest
run of anyone who installs chorusline, and most of those never touch a model. The chat
service runs inside the test's ``actor_system``, as an embedding application's would, so
a test's own actors and the chat tree share one system (and one fault injector).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from chorusline.actors import ActorSystem
    from chorusline.chat import ChatService, ChatSettings
    from chorusline.runtime import LoadedModel

#: Room for a few short test turns; the service's default reserves 512 MiB.
TEST_KV_CACHE_BYTES = 64 * 1024 * 1024


@pytest.fixture(scope="session")
def chorusline_model() -> LoadedModel:
    """The bundled model, loaded once per session (seconds, and hundreds of MB each time).
    Override it in a conftest to share a model the suite already loads."""
    from chorusline.runtime import load_model

    return load_model(None, progress=False)


@pytest.fixture
def chorusline_settings(tmp_path: Path) -> ChatSettings:
    """The ``chat_service`` fixture's settings: a fresh SQLite file, a test-sized KV cache,
    no embedding model and no automatic titles (each would be a second model's work).
    Override it to test other settings."""
    from chorusline.chat import ChatSettings
    from chorusline.runtime import EngineConfig

    return ChatSettings(
        database_url=f"sqlite:///{tmp_path / 'chorusline.db'}",
        engine=EngineConfig(kv_cache_bytes=TEST_KV_CACHE_BYTES),
        embeddings=False,
        auto_titles=False,
    )


@pytest.fixture
async def actor_system() -> AsyncIterator[ActorSystem]:
    """An open actor system, shut down (every actor stopped) after the test."""
    from chorusline.actors import open_actor_system

    async with open_actor_system("test") as system:
        yield system


@pytest.fixture
async def chat_service(
    actor_system: ActorSystem, chorusline_settings: ChatSettings,
    chorusline_model: LoadedModel,
) -> AsyncIterator[ChatService]:
    """The whole chat service, started in ``actor_system`` and stopped after the test."""
    from chorusline.chat import open_chat_service

    async with open_chat_service(chorusline_settings, system=actor_system,
                                 model=chorusline_model) as chat:
        yield chat

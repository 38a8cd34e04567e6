"""Conversation management routes (``/v1/conversations...``, ``/v1/shared/{token}``)."""

from __future__ import annotations

from quart_trio import QuartTrio

from chorusline.chat import ChatService


def register(app: QuartTrio, chat: ChatService, model_name: str) -> None:
    """Add the conversation routes to ``app``."""

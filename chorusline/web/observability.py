"""Operational routes: ``/metrics`` (Prometheus) and ``/openapi.json``."""

from __future__ import annotations

from quart_trio import QuartTrio

from chorusline.chat import ChatService


def register(app: QuartTrio, chat: ChatService, model_name: str) -> None:
    """Add the operational routes to ``app``."""

"""Reading a turn's stream to the end, for the service tests."""

from __future__ import annotations

from chorusline.chat import TurnHandle


async def read(handle: TurnHandle) -> tuple[str, str | None]:
    """The reply's whole text and its finish reason."""
    text, finish = "", None
    async for chunks in handle.stream:
        for chunk in chunks:
            text += chunk.text
            finish = chunk.finish_reason or finish
    return text, finish

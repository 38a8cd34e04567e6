"""chorusline.chat (see DESIGN.md)."""

__all__: list[str] = []

"""chorusline.web (see DESIGN.md)."""

__all__: list[str] = []

"""The value checks every store method runs before any SQL: a bad value must be an
``InvalidRequest`` naming its field, not a driver error or a row that cannot be read back.
"""

from __future__ import annotations

from chorusline.protocols import InvalidRequest


def check_text(value: str, what: str, *, max_len: int, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be a string", param=what)
    if not allow_empty and not value.strip():
        raise InvalidRequest(f"{what} must not be empty", param=what)
    if len(value) > max_len:
        raise InvalidRequest(f"{what} is longer than {max_len} characters", param=what)
    if "\x00" in value:
        raise InvalidRequest(f"{what} contains a NUL character", param=what)
    return value


def check_limit(limit: int, *, maximum: int = 1000) -> int:
    if not 1 <= limit <= maximum:
        raise InvalidRequest(f"limit must be between 1 and {maximum}", param="limit")
    return limit

"""Every type that crosses an actor boundary or the wire. Imports nothing of chorusline."""

from chorusline.protocols.errors import (
    ChoruslineError,
    ContextTooLong,
    InvalidRequest,
    InvalidSamplingParams,
    InvalidTokenId,
    ModelNotFound,
    NotFound,
    Overloaded,
    RateLimited,
    Unauthorized,
)

__all__ = [
    "ChoruslineError",
    "ContextTooLong",
    "InvalidRequest",
    "InvalidSamplingParams",
    "InvalidTokenId",
    "ModelNotFound",
    "NotFound",
    "Overloaded",
    "RateLimited",
    "Unauthorized",
]

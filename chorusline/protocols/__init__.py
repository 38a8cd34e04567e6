"""Every type that crosses an actor boundary or the wire. Imports nothing of chorusline."""

from chorusline.protocols import openai  # the OpenAI wire format (a namespace, not types)
from chorusline.protocols.errors import (
    ChoruslineError,
    ContextTooLong,
    InvalidRequest,
    InvalidSamplingParams,
    InvalidTokenId,
    ModelNotFound,
    NotFound,
    Overloaded,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
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
    "PermissionDenied",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthorized",
    "openai",
]

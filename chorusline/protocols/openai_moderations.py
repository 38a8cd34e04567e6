"""OpenAI's ``POST /v1/moderations`` wire format over chorusline's moderation policy.

The chat path's policy (``chorusline.moderation``) speaks its own categories (weapons,
drugs, self_harm, sexual_minors, pii, prompt_injection, and whatever a pluggable
classifier reports); OpenAI clients expect OpenAI's thirteen. This module owns the
mapping, as data, so that the route shows what the chat path would decide in the shape
clients parse. It knows the findings only as plain values (``Finding``-like tuples), so
it stays below the moderation package, as every protocol module does.

Categories chorusline has no counterpart for in OpenAI's list (PII, prompt injection, a
custom classifier's own) are extension keys under their own names: a client reading
the thirteen keys is unaffected, and one that wants more can read them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chorusline.protocols.errors import InvalidRequest, ModelNotFound
from chorusline.protocols.openai_fields import check_type, reject_unknown

ALLOWED_FIELDS = frozenset({"input", "model"})
#: The name chorusline answers with; OpenAI's two aliases map to the same policy.
MODERATION_MODEL = "chorusline-moderation"
MODEL_ALIASES = frozenset({"omni-moderation-latest", "text-moderation-latest",
                           MODERATION_MODEL})
#: OpenAI's categories, in its order.
OPENAI_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)
#: chorusline's categories as OpenAI's. The rules look for requests to *make* weapons
#: or drugs (illicit advice; weapons are OpenAI's "illicit/violent") and first-person
#: intent or a method sought (OpenAI's "self-harm/intent").
CATEGORY_MAP: Mapping[str, tuple[str, ...]] = {
    "weapons": ("illicit", "illicit/violent"),
    "drugs": ("illicit",),
    "self_harm": ("self-harm", "self-harm/intent"),
    "sexual_minors": ("sexual", "sexual/minors"),
}
#: chorusline's own categories with no OpenAI counterpart: always present, as extension
#: keys, so the shape of a result does not depend on what was found.
EXTENSION_CATEGORIES = ("pii", "prompt_injection")
#: OpenAI's limit on the inputs of one request.
MAX_INPUTS = 32


@dataclass(frozen=True)
class ModerationRequest:
    model: str
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class ModerationFinding:
    """One finding the policy kept (at or above its threshold), with whether the policy
    acts on it at the input stage (``acted``: not ALLOW)."""

    category: str
    score: float
    acted: bool


def parse_moderation_request(body: Any) -> ModerationRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    reject_unknown(body, ALLOWED_FIELDS)
    model = body.get("model")
    if model is None:
        model = "omni-moderation-latest"  # OpenAI's default
    check_type(model, str, "model", "a string")
    if model not in MODEL_ALIASES:
        raise ModelNotFound(f"The model '{model}' does not exist", param="model")
    return ModerationRequest(model, parse_input(body.get("input")))


def parse_input(value: Any) -> tuple[str, ...]:
    """A string, an array of strings, or an array of ``{"type": "text", "text"}`` parts
    (each part one input, as OpenAI scores them); image parts are refused."""
    if value is None:
        raise InvalidRequest("you must provide an input parameter", param="input")
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not value:
        raise InvalidRequest("input must be a string or a non-empty array of strings or "
                             "of text parts", param="input")
    if len(value) > MAX_INPUTS:
        raise InvalidRequest(f"input may hold at most {MAX_INPUTS} items, got {len(value)}",
                             param="input")
    if all(isinstance(v, str) for v in value):
        return tuple(value)
    texts = []
    for i, part in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(part, dict):
            raise InvalidRequest(f"{where} must be a text part like the others "
                                 "({\"type\": \"text\", \"text\": ...})", param=where)
        kind = part.get("type")
        if kind == "image_url":
            raise InvalidRequest(f"{where}: image inputs are not supported by this server "
                                 "(text only)", param=f"{where}.type")
        if kind != "text":
            raise InvalidRequest(f"{where}.type must be 'text'", param=f"{where}.type")
        reject_unknown(part, {"type", "text"}, f"{where}.")
        texts.append(check_type(part.get("text"), str, f"{where}.text", "a string"))
    return tuple(texts)


def moderation_result(findings: Iterable[ModerationFinding], blocked: bool, action: str
                      ) -> dict[str, Any]:
    """One input's result. A category is true when the policy acts on a finding in it;
    ``flagged`` when the input is harmful in OpenAI's sense (one of the thirteen is
    true) or the chat path would refuse it (``blocked``, which a stricter policy may
    make of an extension category). ``action`` (an extension) is what the chat path
    does with the text: ``allow``, ``redact`` or ``block``."""
    keys = list(OPENAI_CATEGORIES) + list(EXTENSION_CATEGORIES)
    hits = dict.fromkeys(keys, False)
    scores = dict.fromkeys(keys, 0.0)
    for finding in findings:
        mapped = CATEGORY_MAP.get(finding.category)
        if mapped is None:
            mapped = (finding.category,)  # OpenAI's own names, or an extension key
        for key in mapped:
            hits[key] = hits.get(key, False) or finding.acted
            scores[key] = max(scores.get(key, 0.0), float(finding.score))
    flagged = blocked or any(hits[key] for key in OPENAI_CATEGORIES)
    return {"flagged": flagged, "categories": hits, "category_scores": scores,
            "category_applied_input_types": {key: ["text"] for key in hits},
            "action": action}


def moderation_response(id: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": id, "model": MODERATION_MODEL, "results": results}

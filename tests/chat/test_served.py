"""The served-model table: names and aliases, the default, tier access, capabilities and
fallbacks, each refusal with OpenAI's status (404 unknown, 403 not on the tier, 400 a
chat request to a base model)."""

from __future__ import annotations

import pytest

from chorusline.chat.served import CHAT, COMPLETIONS, ServedModel, ServedModels
from chorusline.protocols import InvalidRequest, ModelNotFound, PermissionDenied
from chorusline.ratelimit import Tier, Tiers


class _Template:
    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True
               ) -> str:
        return ""


class _Tokenizer:
    special_tokens: dict[str, int] = {}

    def encode(self, text: str, *, allow_special: bool = False) -> list[int]:
        return []

    def token_bytes(self, token_id: int) -> bytes:
        return b""


def model(name: str, *, chat: bool = True, aliases: tuple[str, ...] = (),
          fallback: tuple[str, ...] = ()) -> ServedModel:
    return ServedModel(name, _Tokenizer(), _Template() if chat else None, 2048, 100,
                       aliases=aliases, fallback=fallback)


def tier(models: tuple[str, ...] | None = None) -> Tier:
    return Tier("t", 10, 1000, 2, 1, models=models)


def table() -> ServedModels:
    return ServedModels([model("small", aliases=("default", "fast"), fallback=("base",)),
                         model("base", chat=False, fallback=("small",)),
                         model("big", fallback=("base", "small"))])


def test_names_aliases_and_the_default() -> None:
    served = table()
    assert served.resolve(None, tier(), CHAT).name == "small"
    assert served.resolve("fast", tier(), CHAT).name == "small"
    assert served.resolve("big", tier(), CHAT).name == "big"
    with pytest.raises(ModelNotFound, match="`nope` does not exist"):
        served.resolve("nope", tier(), CHAT)


def test_the_default_is_the_first_chat_model_unless_an_alias_says() -> None:
    served = ServedModels([model("base", chat=False), model("small")])
    assert served.default.name == "small"
    aliased = ServedModels([model("small"), model("big", aliases=("default",))])
    assert aliased.default.name == "big"


def test_a_tier_uses_only_its_models_by_name_or_alias() -> None:
    served, limited = table(), tier(("fast",))
    assert served.resolve("small", limited, CHAT).name == "small"  # its alias is listed
    with pytest.raises(PermissionDenied, match="not available on the 't' tier") as caught:
        served.resolve("big", limited, CHAT)
    assert caught.value.http_status == 403 and caught.value.param == "model"


def test_a_base_model_refuses_chat_and_serves_completions() -> None:
    served = table()
    assert served.resolve("base", tier(), COMPLETIONS).name == "base"
    with pytest.raises(InvalidRequest, match="base model with no chat template"):
        served.resolve("base", tier(), CHAT)


def test_fallbacks_keep_what_the_tier_may_use_and_can_serve() -> None:
    served = table()
    big = served["big"]
    assert [m.name for m in served.fallbacks(big, tier(), COMPLETIONS)] == ["base", "small"]
    assert [m.name for m in served.fallbacks(big, tier(), CHAT)] == ["small"]  # base: no chat
    assert served.fallbacks(big, tier(("big",)), COMPLETIONS) == []


@pytest.mark.parametrize(("models", "message"), [
    ([model("a"), model("a")], "served twice"),
    ([model("a", aliases=("x",)), model("b", aliases=("x",))], "names two models"),
    ([model("a", fallback=("ghost",))], "fallback 'ghost' is not served"),
    ([], "at least one model"),
])
def test_a_wrong_table_is_refused(models: list[ServedModel], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServedModels(models)


def test_a_tier_naming_an_unserved_model_stops_the_start() -> None:
    tiers = Tiers.from_mapping({"tiers": {"free": {
        "requests_per_minute": 1, "tokens_per_minute": 10, "max_concurrent_streams": 1,
        "priority": 1, "models": ["fast", "gpt-9"]}}})
    with pytest.raises(ValueError, match="'gpt-9', which is not served"):
        table().check_tiers(tiers)

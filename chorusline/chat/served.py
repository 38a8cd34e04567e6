"""The served models: what each is, what it can do, and how a request's ``model`` is read.

Every model has its own engine subtree (``chat.tree``) and its own tokenizer, template,
context window and grammar compiler, so a turn carries the name of the model it runs on
and everything model-specific is looked up through it here. The table is built once at
start and never changes; which of its models is *healthy* right now is the router's
business (``chat.router``).

Names: each model has its name and aliases (``default`` on the first chat model unless
configured, ``fast`` on the smallest); a tier may list the names or aliases it may use
(``Tier.models``). A request naming neither a served name nor an alias is a 404
``model_not_found``; one naming a model its tier may not use is a 403.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from chorusline.chat.context import TemplateLike
from chorusline.protocols import (
    Grammar,
    InvalidGrammar,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    TokenizerLike,
)
from chorusline.ratelimit import Tier

#: What a request needs of a model: ``chat`` needs a chat template.
CHAT, COMPLETIONS = "chat", "completions"


class GrammarCheck(Protocol):
    """Compiles (and caches) a grammar for the model's tokenizer, or raises
    ``InvalidGrammar`` naming what it cannot take (``chorusline.grammar``)."""

    def check(self, grammar: Grammar, param: str = "response_format") -> None: ...


class _NoGrammars:
    """For a model built without a grammar engine: every grammar is refused."""

    def check(self, grammar: Grammar, param: str = "response_format") -> None:
        raise InvalidGrammar("constrained decoding is not available on this server",
                             param=param)


@dataclass(frozen=True)
class ModelInfo:
    """What the API says about a served model (``GET /v1/models``, the console)."""

    name: str
    aliases: tuple[str, ...]
    capabilities: tuple[str, ...]
    context_window: int
    fallback: tuple[str, ...]


@dataclass
class ServedModel:
    name: str
    tokenizer: TokenizerLike
    #: None for a base model: it serves completions only (a chat request is a 400).
    template: TemplateLike | None
    context_window: int
    #: The model's vocabulary size, to refuse bad token ids before a turn streams.
    vocab_size: int
    grammars: GrammarCheck = field(default_factory=lambda: _NoGrammars(), repr=False)
    #: The longest token's bytes: bounds how much text a prompt can need tokenising.
    max_token_bytes: int = 128
    #: Ids a raw-text completion prompt starts with (Gemma's BOS; nothing for SmolLM2).
    prompt_prefix: tuple[int, ...] = ()
    aliases: tuple[str, ...] = ()
    #: Models tried in order when this one's engine is restarting, has given up or
    #: refuses admission (``chat.router``); empty: the documented 503 stands.
    fallback: tuple[str, ...] = ()

    @property
    def capabilities(self) -> tuple[str, ...]:
        return (CHAT, COMPLETIONS) if self.template is not None else (COMPLETIONS,)

    @property
    def driver_key(self) -> str:
        """The registry name of this model's engine driver."""
        return f"chorusline.engine-driver/{self.name}"

    @property
    def worker_key(self) -> str:
        return f"chorusline.gpu-worker/{self.name}"

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def info(self) -> ModelInfo:
        return ModelInfo(self.name, self.aliases, self.capabilities, self.context_window,
                         self.fallback)

    def require(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise InvalidRequest(
                f"The model `{self.name}` is a base model with no chat template: it serves "
                "/v1/completions only", param="model")


class ServedModels:
    """The served models by name, their aliases, and the default chat model."""

    def __init__(self, models: Iterable[ServedModel]) -> None:
        self._by_name: dict[str, ServedModel] = {}
        self._aliases: dict[str, str] = {}
        for model in models:
            if model.name in self._by_name or model.name in self._aliases:
                raise ValueError(f"model name {model.name!r} is served twice")
            self._by_name[model.name] = model
        for model in self._by_name.values():
            for alias in model.aliases:
                if alias in self._by_name or self._aliases.get(alias, model.name) != model.name:
                    raise ValueError(f"alias {alias!r} names two models")
                self._aliases[alias] = model.name
        if not self._by_name:
            raise ValueError("at least one model must be served")
        for model in self._by_name.values():
            for other in model.fallback:
                if self.lookup(other) is None:
                    raise ValueError(f"{model.name}: fallback {other!r} is not served")
        chat = [m for m in self._by_name.values() if CHAT in m.capabilities]
        self.default = self._by_name[self._aliases.get("default", "")] if (
            "default" in self._aliases) else (chat or list(self._by_name.values()))[0]

    def __getitem__(self, name: str) -> ServedModel:
        return self._by_name[name]

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._by_name.values())

    def ordered(self) -> list[ServedModel]:
        """Every model, the default first (as the API, the console and metrics list them)."""
        return [self.default, *(m for m in self._by_name.values() if m is not self.default)]

    def __len__(self) -> int:
        return len(self._by_name)

    def lookup(self, name: str) -> ServedModel | None:
        """The model ``name`` names (its name or an alias), or None."""
        served = self._by_name.get(name) or self._by_name.get(self._aliases.get(name, ""))
        return served

    def resolve(self, name: str | None, tier: Tier, capability: str) -> ServedModel:
        """The model a request asks for: ``None`` is the default; unknown names are a 404,
        a model the tier may not use a 403, a chat request to a base model a 400."""
        model = self.default if name is None else self.lookup(name)
        if model is None:
            raise ModelNotFound(f"The model `{name}` does not exist", param="model")
        if not tier.may_use(*model.names()):
            raise PermissionDenied(
                f"The model `{model.name}` is not available on the {tier.name!r} tier",
                param="model")
        model.require(capability)
        return model

    def fallbacks(self, model: ServedModel, tier: Tier, capability: str) -> list[ServedModel]:
        """``model``'s fallbacks this tier may use and that can serve ``capability``."""
        out = []
        for name in model.fallback:
            other = self.lookup(name)
            if (other is not None and other is not model and tier.may_use(*other.names())
                    and capability in other.capabilities):
                out.append(other)
        return out

    def check_tiers(self, tiers: Iterable[Tier]) -> None:
        """Refuse to start when a tier lists a model that is not served (a typo would
        otherwise lock a paying tier out of everything)."""
        for tier in tiers:
            for name in tier.models or ():
                if self.lookup(name) is None:
                    raise ValueError(f"tier {tier.name!r} lists model {name!r}, which is "
                                     f"not served ({', '.join(self._by_name)})")

    def describe(self) -> Mapping[str, ServedModel]:
        return dict(self._by_name)

"""Render a model's own Jinja chat template exactly as `transformers` does.

The prompt format is part of the model (ChatML for SmolLM2, something else for others), so
we never hard-code it: the template string comes from the model file and is rendered in
the same sandboxed Jinja environment, with the same helpers, that `apply_chat_template`
uses.  Any difference here would silently change what the model sees.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

_SPECIAL_TOKEN_ROLES = ("bos", "eos", "unk", "pad")


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Jinja's built-in filter HTML-escapes; transformers replaces it with plain json.dumps.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class _GenerationTag(jinja2.ext.Extension):
    """Accept transformers' `{% generation %}` block so such templates parse; renders body."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        call = self.call_method("_render_body")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render_body(self, caller: Any) -> str:
        return str(caller())


@lru_cache(maxsize=16)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationTag, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(template)


class ChatTemplate:
    """A compiled chat template plus the special-token strings it may refer to."""

    def __init__(self, template: str, special_tokens: Mapping[str, str] | None = None) -> None:
        if not template:
            raise ValueError("empty chat template")
        self.template = template
        # e.g. {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}, as transformers passes.
        self.special_tokens: dict[str, str] = dict(special_tokens or {})
        self._compiled = _compile(template)

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool = True,
        **kwargs: Any,
    ) -> str:
        """The prompt text for `messages`; extra kwargs reach the template like in HF."""
        if not messages:
            raise ValueError("cannot render an empty conversation")
        # Like transformers: keys whose value is None are dropped, messages copied.
        chat = [{k: v for k, v in m.items() if v is not None} for m in messages]
        variables: dict[str, Any] = {**self.special_tokens, **kwargs}
        variables.setdefault("tools", None)
        variables.setdefault("documents", None)
        return self._compiled.render(
            messages=chat, add_generation_prompt=add_generation_prompt, **variables
        )

    @classmethod
    def from_gguf_metadata(cls, metadata: Mapping[str, Any]) -> ChatTemplate:
        template = metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError("GGUF metadata has no tokenizer.chat_template")
        tokens = metadata.get("tokenizer.ggml.tokens") or []
        special: dict[str, str] = {}
        for role in _SPECIAL_TOKEN_ROLES:
            token_id = metadata.get(f"tokenizer.ggml.{role}_token_id")
            if token_id is not None and 0 <= int(token_id) < len(tokens):
                special[f"{role}_token"] = str(tokens[int(token_id)])
        return cls(str(template), special)

    @classmethod
    def from_hf_dir(cls, directory: Path) -> ChatTemplate:
        """Read `chat_template.jinja` or `tokenizer_config.json`'s `chat_template`."""
        config_path = directory / "tokenizer_config.json"
        config: dict[str, Any] = {}
        if config_path.is_file():
            config = json.loads(config_path.read_text(encoding="utf-8"))
        special: dict[str, str] = {}
        for role in _SPECIAL_TOKEN_ROLES:
            value = config.get(f"{role}_token")
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                special[f"{role}_token"] = value
        jinja_file = directory / "chat_template.jinja"
        if jinja_file.is_file():
            return cls(jinja_file.read_text(encoding="utf-8"), special)
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: transformers picks "default"
            named = {t.get("name"): t.get("template") for t in template}
            template = named.get("default")
        if not isinstance(template, str) or not template:
            raise ValueError(f"no chat template in {directory}")
        return cls(template, special)

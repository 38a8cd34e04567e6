"""``serve``'s model flags: which models, their KV budgets, fallbacks and aliases.

Each is repeatable (``--model smollm2-135m-instruct --model mine=/models/mine.gguf``) and
has a ``CHORUSLINE_*`` variable holding the same entries comma-separated. A flag that
names a model not served, or gives one two values, is a usage error naming the entry.
Kept apart from ``cli`` so the rules for reading them sit in one small place.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

from chorusline.chat import BUNDLED_MODELS, ModelSettings


def repeatable(parser: argparse.ArgumentParser, name: str, help: str, *, shown: str,
               metavar: str) -> None:
    """``--name`` (repeatable) with its ``CHORUSLINE_NAME`` variable (comma-separated);
    the flag's entries replace the variable's."""
    variable = "CHORUSLINE_" + name.upper().replace("-", "_")
    value = os.environ.get(variable)
    parser.add_argument(f"--{name}", action="append", default=None, metavar=metavar,
                        help=f"{help}; repeatable (default: {shown}; env {variable})")
    parser.set_defaults(**{f"{name.replace('-', '_')}_env": _split(value)})


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def entries(args: argparse.Namespace, name: str) -> list[str]:
    """The flag's entries, else the variable's, else none."""
    given: list[str] | None = getattr(args, name)
    return given if given is not None else (getattr(args, f"{name}_env") or [])


def _pair(entry: str, flag: str) -> tuple[str, str]:
    name, sep, value = entry.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ValueError(f"--{flag} {entry!r}: expected NAME=VALUE")
    return name.strip(), value.strip()


def model_settings(args: argparse.Namespace) -> tuple[ModelSettings, ...]:
    """The served models from ``--model``, ``--kv-cache-mb``, ``--fallback``, ``--alias``
    (no ``--model``: both bundled models); raises ValueError with a one-line reason."""
    bundled = {m.name: m for m in BUNDLED_MODELS}
    chosen: dict[str, ModelSettings] = {}
    for entry in entries(args, "model"):
        name, sep, path = entry.partition("=")
        name = name.strip()
        if not name:
            raise ValueError(f"--model {entry!r}: expected NAME or NAME=PATH")
        if name in chosen:
            raise ValueError(f"--model {name!r} is given twice")
        if sep:
            chosen[name] = ModelSettings(name, path=path.strip())
        elif name in bundled:
            chosen[name] = bundled[name]
        else:
            raise ValueError(f"--model {name!r}: not a bundled model "
                             f"({', '.join(bundled)}): give NAME=PATH")
    models = chosen or dict(bundled)
    if chosen:  # a bundled model's fallbacks stay only where their target is served
        models = {n: replace(m, fallback=tuple(f for f in m.fallback if f in models))
                  for n, m in models.items()}

    def served(name: str, flag: str) -> ModelSettings:
        if name not in models:
            raise ValueError(f"--{flag} names {name!r}, which is not served "
                             f"({', '.join(models)})")
        return models[name]

    for entry in entries(args, "kv_cache_mb"):
        if "=" not in entry:
            continue  # the budget of every engine: EngineConfig's, set by the caller
        name, value = _pair(entry, "kv-cache-mb")
        models[name] = replace(served(name, "kv-cache-mb"), kv_cache_mb=_mib(value))
    given: set[str] = set()  # a model's first --fallback replaces its bundled ones
    for entry in entries(args, "fallback"):
        name, target = _pair(entry, "fallback")
        served(target, "fallback")
        model = served(name, "fallback")
        before = model.fallback if name in given else ()
        given.add(name)
        models[name] = replace(model, fallback=(*before, target))
    for entry in entries(args, "alias"):
        name, alias = _pair(entry, "alias")
        model = served(name, "alias")
        models[name] = replace(model, aliases=(*model.aliases, alias))
    return tuple(models.values())


def shared_kv_cache_mb(args: argparse.Namespace) -> int | None:
    """The plain ``--kv-cache-mb N`` (every engine's budget), if one is given."""
    plain = [e for e in entries(args, "kv_cache_mb") if "=" not in e]
    if len(plain) > 1:
        raise ValueError("--kv-cache-mb is given twice for every engine")
    return _mib(plain[0]) if plain else None


def _mib(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--kv-cache-mb {text!r}: not a whole number of MiB") from None
    if value < 1:
        raise ValueError("--kv-cache-mb must be at least 1")
    return value


def forwarded(args: argparse.Namespace) -> list[str]:
    """These flags as a ``--workers`` parent hands them to each worker."""
    argv: list[str] = []
    for name in ("model", "kv_cache_mb", "fallback", "alias"):
        for entry in entries(args, name):
            argv += [f"--{name.replace('_', '-')}", entry]
    return argv

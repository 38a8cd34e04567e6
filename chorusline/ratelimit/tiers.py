"""Rate-limit tiers: what a key on each plan may do per minute and at once.

Tiers are configuration, not code: operators change prices and plans without a release,
so the defaults below can be replaced by a TOML or JSON file::

    default = "free"            # the tier of a key that names none

    [tiers.free]
    requests_per_minute = 20
    tokens_per_minute = 40000
    max_concurrent_streams = 2
    priority = 2                # lower number = scheduled first
    models = ["fast"]           # optional: the models (names or aliases) it may use

A file replaces the defaults entirely (a partial merge would make "which limits apply?"
depend on two places). Every problem in a file is reported at once, with its path
(``tiers.plus.priority: ...``), because a server that refuses to start should say
everything that is wrong in one go.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_FIELDS = ("requests_per_minute", "tokens_per_minute", "max_concurrent_streams", "priority")
#: Optional fields: ``models`` lists what a tier may use (absent: every served model).
_OPTIONAL = ("models",)


class TierConfigError(ValueError):
    """A tiers file or mapping is invalid; ``problems`` lists every issue found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(f"{source}: invalid rate-limit tiers:\n  " + "\n  ".join(problems))


@dataclass(frozen=True, slots=True)
class Tier:
    """One plan's limits.

    ``priority`` orders scheduling classes: **lower is more important** (0 is served
    first), so paid tiers get smaller numbers than ``free``. The request and token
    budgets are token buckets whose capacity is one minute's allowance (see ``local``).
    """

    name: str
    requests_per_minute: int
    tokens_per_minute: int
    max_concurrent_streams: int
    priority: int
    #: The model names or aliases this tier may use; None: every served model. Checked
    #: against what is served when the service starts (``chat.served``).
    models: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        problems = _check_tier(self.name, _as_dict(self))
        if problems:
            raise TierConfigError(f"tier {self.name!r}", problems)

    def may_use(self, *names: str) -> bool:
        """Whether any of ``names`` (a model's name and aliases) is on the tier's list."""
        return self.models is None or any(name in self.models for name in names)


def _as_dict(tier: Tier) -> dict[str, Any]:
    body = {field: getattr(tier, field) for field in _FIELDS}
    if tier.models is not None:
        body["models"] = list(tier.models)
    return body


def _check_tier(name: str, body: Mapping[str, Any], where: str = "") -> list[str]:
    problems: list[str] = []
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"{where}{name!r}: a tier name is 1-64 letters, digits, '_', '.', '-'")
    for field in _FIELDS:
        if field not in body:
            problems.append(f"{where}{field}: missing")
            continue
        value = body[field]
        # bool is an int subclass: `priority = true` is a typo, not a number.
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{where}{field}: must be an integer, got {value!r}")
        elif field == "priority" and value < 0:
            problems.append(f"{where}{field}: must be >= 0, got {value}")
        elif field != "priority" and value <= 0:
            problems.append(f"{where}{field}: must be > 0, got {value}")
    models = body.get("models")
    if models is not None and (not isinstance(models, list | tuple) or not models
                               or not all(isinstance(m, str) and m for m in models)):
        problems.append(f"{where}models: must be a non-empty list of model names, "
                        f"got {models!r}")
    for extra in sorted(set(body) - set(_FIELDS) - set(_OPTIONAL)):
        problems.append(f"{where}{extra}: unknown field (expected one of "
                        f"{', '.join(_FIELDS + _OPTIONAL)})")
    return problems


DEFAULT_TIERS_DATA: dict[str, Any] = {
    "default": "free",
    "tiers": {
        "free": {
            "requests_per_minute": 20,
            "tokens_per_minute": 40_000,
            "max_concurrent_streams": 2,
            "priority": 2,
        },
        "plus": {
            "requests_per_minute": 200,
            "tokens_per_minute": 400_000,
            "max_concurrent_streams": 8,
            "priority": 1,
        },
        "enterprise": {
            "requests_per_minute": 2_000,
            "tokens_per_minute": 4_000_000,
            "max_concurrent_streams": 64,
            "priority": 0,
        },
    },
}


@dataclass(frozen=True, slots=True)
class Tiers:
    """The configured tiers by name plus the one used when a key names none."""

    by_name: Mapping[str, Tier]
    default_name: str

    def __post_init__(self) -> None:
        if self.default_name not in self.by_name:
            raise TierConfigError("tiers", [f"default: unknown tier {self.default_name!r}"])

    @property
    def default(self) -> Tier:
        return self.by_name[self.default_name]

    def get(self, name: str | None) -> Tier:
        """The tier called ``name``; ``None`` means the default. Unknown names raise
        ``KeyError``: silently downgrading a paying customer would be worse."""
        if name is None:
            return self.default
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"unknown rate-limit tier {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __iter__(self) -> Iterator[Tier]:
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    @classmethod
    def defaults(cls) -> Tiers:
        return cls.from_mapping(DEFAULT_TIERS_DATA, source="built-in defaults")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "tiers") -> Tiers:
        """Validate a parsed document (``{"default": ..., "tiers": {...}}``)."""
        if not isinstance(data, Mapping):
            raise TierConfigError(source, ["the document must be a table/object"])
        problems: list[str] = []
        for extra in sorted(set(data) - {"default", "tiers"}):
            problems.append(f"{extra}: unknown top-level key (expected 'default', 'tiers')")
        raw = data.get("tiers")
        if not isinstance(raw, Mapping) or not raw:
            problems.append("tiers: must be a non-empty table of tiers")
            raise TierConfigError(source, problems)
        parsed: dict[str, Tier] = {}
        for name, body in raw.items():
            where = f"tiers.{name}."
            if not isinstance(body, Mapping):
                problems.append(f"tiers.{name}: must be a table, got {body!r}")
                continue
            found = _check_tier(name, body, where)
            if found:
                problems.extend(found)
                continue
            models = body.get("models")
            parsed[name] = Tier(name=name, **{f: body[f] for f in _FIELDS},
                                models=None if models is None else tuple(models))
        default = data.get("default", "free" if "free" in raw else None)
        if default is None:
            problems.append("default: required when there is no tier called 'free'")
        elif not isinstance(default, str) or default not in raw:
            problems.append(f"default: {default!r} is not one of the tiers ({', '.join(raw)})")
        if problems:
            raise TierConfigError(source, problems)
        assert isinstance(default, str)
        return cls(by_name=dict(parsed), default_name=default)

    @classmethod
    def load(cls, path: str | Path) -> Tiers:
        """Read tiers from a ``.toml`` or ``.json`` file."""
        path = Path(path)
        try:
            if path.suffix == ".toml":
                with path.open("rb") as handle:
                    data: Any = tomllib.load(handle)
            elif path.suffix == ".json":
                data = json.loads(path.read_text(encoding="utf-8"))
            else:
                raise TierConfigError(str(path), ["the file must end in .toml or .json"])
        except OSError as exc:
            raise TierConfigError(str(path), [f"cannot read: {exc}"]) from exc
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise TierConfigError(str(path), [f"cannot parse: {exc}"]) from exc
        return cls.from_mapping(data, source=str(path))

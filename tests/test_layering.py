"""The import layering of docs/design.md, enforced by parsing every module's imports.

actors <- supervisors <- chat -> runtime, store, moderation, ratelimit, grammar; runtime
-> grammar; protocols is imported by everyone and imports nothing of ours; web -> chat
(and protocols) only. The libraries below the actors (store, moderation, ratelimit,
grammar) import no actors, supervisors, chat or web. The framework packages never import
the heavy stack, and runtime never imports trio or pykka, so each stays usable (and
testable) on its own.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "chorusline"

# package -> chorusline packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "protocols": set(),
    "actors": {"protocols"},
    "supervisors": {"actors", "protocols"},
    "runtime": {"protocols", "grammar"},
    "grammar": {"protocols"},
    "store": {"protocols"},
    "moderation": {"protocols"},
    "ratelimit": {"protocols"},
    "chat": {"actors", "supervisors", "runtime", "store", "moderation", "ratelimit",
             "grammar", "protocols"},
    "web": {"chat", "protocols"},
    # An HTTP client of the console feed: nothing of the server in it.
    "top": set(),
    # An HTTP client of a deployment (it spawns servers as processes, never imports them).
    "chaos": set(),
    # For embedders' tests: the kernel, the chat service and the chaos checker.
    "testing": {"actors", "supervisors", "chat", "runtime", "chaos", "protocols"},
}
LIBRARY_STACK = {"torch", "trio", "pykka", "quart", "quart_trio", "hypercorn", "cupy"}
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "actors": {"torch", "quart", "quart_trio", "hypercorn", "redis", "psycopg", "cupy"},
    "supervisors": {"torch", "quart", "quart_trio", "hypercorn", "redis", "psycopg", "cupy"},
    "protocols": {"torch", "trio", "pykka", "quart", "redis", "psycopg", "cupy"},
    "runtime": {"trio", "pykka", "quart", "quart_trio", "hypercorn", "redis", "psycopg"},
    # Libraries below the actors: their own drivers only (redis, psycopg, sqlite3).
    "store": LIBRARY_STACK | {"redis"},
    "moderation": LIBRARY_STACK | {"redis", "psycopg"},
    "ratelimit": LIBRARY_STACK | {"psycopg"},
    "grammar": LIBRARY_STACK | {"redis", "psycopg"},
    "top": (LIBRARY_STACK - {"trio"}) | {"redis", "psycopg"},
    "chaos": (LIBRARY_STACK - {"trio"}) | {"redis", "psycopg"},
}


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if len(parts) > 1:
            found.append((parts[0], path))
    return found


def violations(package: str, path: Path) -> list[str]:
    bad = []
    where = path.relative_to(ROOT.parent) if path.is_relative_to(ROOT.parent) else path
    for name in imported_modules(path):
        top = name.split(".")
        if top[0] == "chorusline" and len(top) > 1:
            target = top[1]
            if target != package and target not in ALLOWED.get(package, set()):
                bad.append(f"{where} imports {name}")
        elif top[0] in FORBIDDEN_THIRD_PARTY.get(package, set()):
            bad.append(f"{where} imports {name}")
    return bad


@pytest.mark.parametrize(("package", "path"), modules(), ids=lambda v: str(v))
def test_imports_point_the_right_way(package: str, path: Path) -> None:
    assert violations(package, path) == []


def test_the_checker_catches_a_wrong_arrow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nfrom chorusline.chat import ChatService\n")
    assert len(violations("actors", bad)) == 2
    assert violations("chat", bad) == []


DOOR_USERS = [*sorted((ROOT / "web").glob("*.py")), ROOT / "cli.py", ROOT / "demo.py",
              ROOT / "workers.py"]
REACH_IN = re.compile(
    r"\bchat\.(system|store|deps|db|tree)\b|\bimport\b.*\b(Sqlite|Postgres)?Store\b")


@pytest.mark.parametrize("path", DOOR_USERS, ids=lambda p: p.name)
def test_web_and_cli_use_only_the_chat_service_door(path: Path) -> None:
    """``ChatService``'s facades are the only way in: no actor system, no store."""
    found = [f"{path.name}:{n}: {line.strip()}"
             for n, line in enumerate(path.read_text().splitlines(), 1) if REACH_IN.search(line)]
    assert found == []

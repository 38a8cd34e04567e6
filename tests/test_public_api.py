"""Each package's public API is exactly its ``__all__``; nothing else is relied upon.

Inside the package tree, code that lives outside package X imports X's names only from
``chorusline.X`` (never from ``chorusline.X.some_module``), and only names in its
``__all__``. The same holds for examples and benchmarks, which stand for outside users.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["actors", "supervisors", "protocols", "runtime", "store", "moderation", "ratelimit",
            "chat", "web", "top", "testing", "chaos"]


def public_names(package: str) -> set[str]:
    module = importlib.import_module(f"chorusline.{package}")
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"chorusline.{package} has no __all__"
    return set(exported)


@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_resolve(package: str) -> None:
    module = importlib.import_module(f"chorusline.{package}")
    for name in public_names(package):
        assert getattr(module, name, None) is not None, f"chorusline.{package}.{name} missing"


def outside_users() -> list[tuple[str | None, Path]]:
    users: list[tuple[str | None, Path]] = []
    for path in sorted((REPO / "chorusline").rglob("*.py")):
        parts = path.relative_to(REPO / "chorusline").parts
        users.append((parts[0] if len(parts) > 1 else None, path))
    for folder in ("examples", "benchmarks"):
        users.extend((None, p) for p in sorted((REPO / folder).rglob("*.py")))
    return users


def reach_ins(owner: str | None, path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        parts = node.module.split(".")
        if parts[0] != "chorusline" or len(parts) < 2 or parts[1] == owner:
            continue
        if parts[1] not in PACKAGES:
            continue
        if len(parts) > 2:
            bad.append(f"{path.name}: from {node.module} import ...")
            continue
        allowed = public_names(parts[1])
        bad.extend(
            f"{path.name}: {node.module}.{a.name} is not public"
            for a in node.names
            if a.name not in allowed
        )
    return bad


@pytest.mark.parametrize(("owner", "path"), outside_users(), ids=lambda v: str(v))
def test_nothing_outside_all_is_relied_upon(owner: str | None, path: Path) -> None:
    assert reach_ins(owner, path) == []

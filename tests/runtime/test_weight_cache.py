"""Weight cache: first load writes, second load reads without dequantising, damage rebuilds."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from chorusline.runtime import dequant
from chorusline.runtime.loader import load_model
from chorusline.runtime.weight_cache import (
    FORMAT_VERSION,
    WeightCache,
    cache_key,
    cache_root,
    file_sha256,
)


@pytest.fixture
def dequant_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls to the dequantiser (one per tensor actually dequantised)."""
    calls: list[int] = []
    real: Callable[..., Any] = dequant.dequantize

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(dequant, "dequantize", counting)
    return calls


def _entry_files(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "weights").iterdir())


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CHORUSLINE_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "chorusline"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "chorusline"
    monkeypatch.setenv("CHORUSLINE_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_root() == tmp_path / "explicit"


def test_second_load_hits_cache(
    tiny_gguf_path: Path, tmp_cache_dir: Path, dequant_calls: list[int]
) -> None:
    first = load_model(tiny_gguf_path, cache_dir=tmp_cache_dir, progress=False)
    tensors_in_file = len(first.weights)
    assert not first.from_cache
    assert len(dequant_calls) == tensors_in_file
    files = _entry_files(tmp_cache_dir)
    assert [f.suffix for f in files] == [".json", ".safetensors"]  # no temp files left

    second = load_model(tiny_gguf_path, cache_dir=tmp_cache_dir, progress=False)
    assert second.from_cache
    assert len(dequant_calls) == tensors_in_file  # not called again
    assert sorted(second.weights) == sorted(first.weights)
    for name, tensor in first.weights.items():
        assert torch.equal(second.weights[name], tensor), name
    assert second.config == first.config
    assert second.tokenizer.encode("hello there") == first.tokenizer.encode("hello there")


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "drop_manifest", "old_format"])
def test_damaged_entry_is_rebuilt(
    tiny_gguf_path: Path, tmp_cache_dir: Path, dequant_calls: list[int], damage: str
) -> None:
    first = load_model(tiny_gguf_path, cache_dir=tmp_cache_dir, progress=False)
    manifest, data = _entry_files(tmp_cache_dir)
    if damage == "flip_byte":
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif damage == "truncate":
        data.write_bytes(data.read_bytes()[:-100])
    elif damage == "drop_manifest":
        manifest.unlink()
    else:
        content = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**content, "format": FORMAT_VERSION - 1}))
    calls_before = len(dequant_calls)

    rebuilt = load_model(tiny_gguf_path, cache_dir=tmp_cache_dir, progress=False)
    assert not rebuilt.from_cache
    assert len(dequant_calls) == calls_before + len(first.weights)
    for name, tensor in first.weights.items():
        assert torch.equal(rebuilt.weights[name], tensor), name
    assert load_model(tiny_gguf_path, cache_dir=tmp_cache_dir, progress=False).from_cache


def test_progress_shown_only_when_dequantising(
    tiny_gguf_path: Path, tmp_cache_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    load_model(tiny_gguf_path, cache_dir=tmp_cache_dir, progress=True)
    assert "dequantising" in capfd.readouterr().err
    load_model(tiny_gguf_path, cache_dir=tmp_cache_dir, progress=True)
    assert "dequantising" not in capfd.readouterr().err


def test_key_depends_on_content_dtype_and_version(tiny_gguf_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(tiny_gguf_path, copy)
    assert cache_key(copy, torch.float32) == cache_key(tiny_gguf_path, torch.float32)
    assert cache_key(copy, torch.bfloat16) != cache_key(copy, torch.float32)
    with copy.open("ab") as handle:
        handle.write(b"\0")
    assert cache_key(copy, torch.float32) != cache_key(tiny_gguf_path, torch.float32)
    assert f"-v{FORMAT_VERSION}" in cache_key(copy, torch.float32)


def test_file_sha256_streams_correctly(tmp_path: Path) -> None:
    import hashlib

    blob = bytes(range(256)) * 40_000  # larger than one read (_READ_BYTES)
    path = tmp_path / "blob"
    path.write_bytes(blob)
    assert file_sha256(path) == hashlib.sha256(blob).hexdigest()


def test_store_and_load_round_trip(tmp_cache_dir: Path) -> None:
    cache = WeightCache(tmp_cache_dir)
    tensors = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4)}
    assert cache.load("k") is None
    cache.store("k", tensors, extra={"metadata": {"x": [1, 2]}})
    entry = cache.load("k")
    assert entry is not None
    assert entry.extra == {"metadata": {"x": [1, 2]}}
    assert torch.equal(entry.tensors["a"], tensors["a"])
    assert torch.equal(entry.tensors["b"], tensors["b"])
    cache.evict("k")
    assert cache.load("k") is None

"""On-disk cache of dequantised weights, so only the first load pays for dequantisation.

An entry can also carry JSON "extra" data; the loader keeps the GGUF metadata there because
the `gguf` package needs several seconds to parse the tokenizer arrays of a GGUF header.

Entries are safetensors files keyed by the source file's sha256, the dtype and a format
version: a changed model file, a different dtype or a change in how we convert weights all
miss the cache instead of serving stale tensors.  Each entry has a manifest holding the
entry's own sha256, checked on read, so a truncated or corrupted file is rebuilt rather
than loaded.  Files are written to a temporary name and renamed, so readers never see a
half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

# Bump whenever the conversion (names, permutations, dequantisation) changes.
FORMAT_VERSION = 1
_READ_BYTES = 1 << 22


def cache_root() -> Path:
    """`$CHORUSLINE_CACHE_DIR`, else `$XDG_CACHE_HOME/chorusline`, else ~/.cache/chorusline."""
    explicit = os.environ.get("CHORUSLINE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "chorusline"


def file_sha256(path: Path) -> str:
    """Streamed, so multi-gigabyte models never sit in memory twice."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while data := handle.read(_READ_BYTES):
            digest.update(data)
    return digest.hexdigest()


def cache_key(source: Path, dtype: torch.dtype) -> str:
    dtype_name = str(dtype).removeprefix("torch.")
    return f"{file_sha256(source)}-{dtype_name}-v{FORMAT_VERSION}"


@dataclass
class CacheEntry:
    tensors: dict[str, torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)


class WeightCache:
    """A directory of `<key>.safetensors` entries with `<key>.json` manifests."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or cache_root()) / "weights"

    def path_for(self, key: str) -> Path:
        return self.directory / f"{key}.safetensors"

    def _manifest_for(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def load(self, key: str) -> CacheEntry | None:
        """The cached tensors, or None on a miss or a damaged entry (which is removed)."""
        data, manifest = self.path_for(key), self._manifest_for(key)
        if not data.is_file() or not manifest.is_file():
            return None
        try:
            expected = json.loads(manifest.read_text(encoding="utf-8"))
            if expected.get("format") != FORMAT_VERSION or expected.get("key") != key:
                raise ValueError("manifest does not describe this entry")
            if data.stat().st_size != expected["size"] or file_sha256(data) != expected["sha256"]:
                raise ValueError("checksum mismatch")
            return CacheEntry(load_file(str(data)), dict(expected.get("extra") or {}))
        except (OSError, ValueError, KeyError, RuntimeError):
            self.evict(key)
            return None

    def store(
        self,
        key: str,
        tensors: dict[str, torch.Tensor],
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write an entry atomically; returns the data file's path.

        The manifest is renamed into place last, so an entry is only visible once complete.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        data = self.path_for(key)
        tmp = self._tmp_path(key, ".safetensors")
        try:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
            manifest = {
                "format": FORMAT_VERSION,
                "key": key,
                "size": tmp.stat().st_size,
                "sha256": file_sha256(tmp),
                "extra": extra or {},
            }
            os.replace(tmp, data)
            tmp = self._tmp_path(key, ".json")
            tmp.write_text(json.dumps(manifest), encoding="utf-8")
            os.replace(tmp, self._manifest_for(key))
        finally:
            tmp.unlink(missing_ok=True)
        return data

    def evict(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)
        self._manifest_for(key).unlink(missing_ok=True)

    def _tmp_path(self, key: str, suffix: str) -> Path:
        fd, name = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.", suffix=suffix)
        os.close(fd)
        return Path(name)

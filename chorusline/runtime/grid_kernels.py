"""Building and loading chorusline's CPU kernels (``kernels/*.cpp``).

torch has no fast CPU kernel for quantised weights with fp32 activations (its int4 and
int8 weight-only kernels want bf16 activations, which rounds them), so chorusline carries
a small C++ file. It is compiled once per source, torch version and compiler, on first
use, with torch's own extension builder, into ``<cache>/kernels/<key>/`` (about 20 s on
two cores), and loaded from there afterwards. Concurrent first uses (``--workers``, test
processes) wait on one file lock instead of compiling twice.

Nothing depends on the build succeeding: without a compiler, or with
``CHORUSLINE_KERNELS=0``, ``load_kernels`` answers False once, with the reason in the
log, and the engine keeps its torch-only path.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
from importlib import resources
from pathlib import Path

import torch

from chorusline.runtime.weight_cache import cache_root

log = logging.getLogger(__name__)

_NAME = "chorusline_grid"
_FLAGS = ["-O3", "-std=c++20"]
_state: dict[str, bool] = {}


_SOURCES = ("grid_linear.cpp", "decode_ops.cpp")


def _sources() -> list[Path]:
    root = resources.files("chorusline.runtime") / "kernels"
    return [Path(str(root / name)) for name in _SOURCES]


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++"))


def kernel_dir() -> Path:
    """Where this source, torch and compiler's build lives."""
    digest = hashlib.sha256()
    for source in _sources():
        digest.update(source.read_bytes())
    digest.update(torch.__version__.encode())
    digest.update(" ".join(_FLAGS).encode())
    digest.update(str(_compiler()).encode())
    return cache_root() / "kernels" / digest.hexdigest()[:16]


def load_kernels() -> bool:
    """True once ``torch.ops.chorusline``'s kernels (``grid4_linear``, ``decode_attention``
    and the rest) exist."""
    if "loaded" in _state:
        return _state["loaded"]
    _state["loaded"] = loaded = _load()
    return loaded


def _load() -> bool:
    if os.environ.get("CHORUSLINE_KERNELS", "1") == "0":
        log.info("CPU grid kernels disabled by CHORUSLINE_KERNELS=0")
        return False
    if _compiler() is None:
        log.warning("no C++ compiler found: quantised CPU weights use torch's path")
        return False
    directory = kernel_dir()
    library = directory / f"{_NAME}.so"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if library.exists():
                torch.ops.load_library(str(library))  # type: ignore[no-untyped-call]
            else:
                _build(directory)  # torch's builder loads what it built
    except Exception as exc:  # a failed build must never stop the engine
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.warning("could not build chorusline's CPU kernels (%s); the engine uses "
                    "torch's path", first)
        log.debug("the build failed with", exc_info=True)
        return False
    return True


def _build(directory: Path) -> None:
    from torch.utils.cpp_extension import load

    log.info("compiling chorusline's CPU grid kernels into %s (once)", directory)
    build = directory / "build"
    build.mkdir(exist_ok=True)
    load(name=_NAME, sources=[str(s) for s in _sources()], extra_cflags=_FLAGS,
         is_python_module=False, build_directory=str(build), verbose=False)
    (build / f"{_NAME}.so").replace(directory / f"{_NAME}.so")

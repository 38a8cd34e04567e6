"""llama-cpp-python's OpenAI server on the bundled GGUF, for a same-run comparison.

The issue's "5x llama-cpp-python" target is a ratio, and ratios are only honest when both
sides run on the same machine in the same run: the project's VMs differ (one had
AVX512-BF16, another only AVX2), and llama.cpp's speed moves with the instruction set as
much as ours does. So ``http_load.py --llama-cpp PYTHON`` starts this server *after*
chorusline has finished (the two never share the cores) and drives it with the same client,
prompts and sizes.

llama-cpp-python lives in its own environment (it compiles llama.cpp; it is not one of the
project's dependencies): ``python -m venv /tmp/llama && /tmp/llama/bin/pip install
'llama-cpp-python[server]'``. It ignores chorusline's ``ignore_eos`` extension, so the
client bans the end-of-turn tokens with ``logit_bias`` instead (see ``EOS_BAN``): both
servers then generate exactly N tokens per request, the same work.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

from benchmarks.common import stop_process

#: ``logit_bias`` that keeps SmolLM2 from ending a turn: ``<|endoftext|>``, ``<|im_end|>``,
#: and ``<|im_start|>``, which llama-cpp-python's ChatML format also treats as a stop.
EOS_BAN = {"0": -100, "1": -100, "2": -100}
START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bundled_gguf() -> Path:
    from chorusline.runtime import default_model_path

    return default_model_path()


@contextmanager
def llama_cpp_server(python: str, threads: int, log: Path) -> Iterator[str]:
    """The server running on a free loopback port; yields its ``…/v1`` base URL."""
    port = free_port()
    command = [python, "-m", "llama_cpp.server", "--model", str(bundled_gguf()),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
               "--n_threads", str(threads), "--n_threads_batch", str(threads),
               # Its default cuts a running stream short whenever another request arrives.
               "--interrupt_requests", "False"]
    url = f"http://127.0.0.1:{port}/v1"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_ready(process, url, log)
            yield url
        finally:
            stop_process(process, timeout=30)


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"llama-cpp-python's server exited ({process.returncode}):\n"
                             f"{tail}")
        try:
            if httpx2.get(f"{url}/models", timeout=2.0).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.5)  # polling a child process's port: there is no event to wait on
    raise SystemExit(f"llama-cpp-python's server did not answer within {START_TIMEOUT_S} s")

"""A real ``chorusline serve`` process for the CLI tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def running_server(db: Path, *flags: str) -> Iterator[tuple[str, str]]:
    """``chorusline serve --port 0 FLAGS`` on ``db``: yields (base URL ending in /v1, admin
    key) and drains it with SIGTERM afterwards. What it wrote on stderr is in
    ``db`` + ``.stderr``."""
    env = dict(os.environ, CHORUSLINE_DATABASE_URL=f"sqlite:///{db}")
    with open(f"{db}.stderr", "w") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "chorusline.cli", "serve", "--port", "0", *flags],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    try:
        assert server.stdout is not None
        key_line = server.stdout.readline()
        assert "admin API key" in key_line, Path(f"{db}.stderr").read_text()
        ready = server.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/v1", ready)
        assert url, ready
        yield url.group(0), key_line.rsplit(" ", 1)[1].strip()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

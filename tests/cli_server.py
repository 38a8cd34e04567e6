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
def running_server(db: Path) -> Iterator[tuple[str, str]]:
    """``chorusline serve --port 0`` on ``db``: yields (base URL ending in /v1, admin key)
    and drains it with SIGTERM afterwards."""
    env = dict(os.environ, CHORUSLINE_DATABASE_URL=f"sqlite:///{db}")
    server = subprocess.Popen([sys.executable, "-m", "chorusline.cli", "serve", "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env=env)
    try:
        assert server.stdout is not None
        key_line = server.stdout.readline()
        assert "admin API key" in key_line, key_line
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

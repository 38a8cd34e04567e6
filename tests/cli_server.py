"""A real ``chorusline serve`` process for the CLI and durability tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def start_server(db: Path, *flags: str) -> tuple[subprocess.Popen[str], str, str | None]:
    """``chorusline serve --port 0 FLAGS`` on ``db``, once it serves: the process, its base
    URL (ending in /v1) and the admin key if this start created one (only the first start
    on a database does). What it writes on stderr is appended to ``db`` + ``.stderr``."""
    env = dict(os.environ, CHORUSLINE_DATABASE_URL=f"sqlite:///{db}")
    with open(f"{db}.stderr", "a") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "chorusline.cli", "serve", "--port", "0", *flags],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    assert server.stdout is not None
    key = None
    while (line := server.stdout.readline()) and "http://" not in line:
        if "admin API key" in line:
            key = line.rsplit(" ", 1)[1].strip()
    url = re.search(r"http://127\.0\.0\.1:\d+/v1", line)
    if url is None:
        server.kill()
        server.wait()
    assert url, Path(f"{db}.stderr").read_text()
    return server, url.group(0), key


@contextmanager
def running_server(db: Path, *flags: str) -> Iterator[tuple[str, str]]:
    """``start_server`` on a fresh ``db``: yields (base URL, admin key) and drains the
    server with SIGTERM afterwards."""
    server, url, key = start_server(db, *flags)
    try:
        assert key is not None, "the first start on a database prints its admin key"
        yield url, key
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

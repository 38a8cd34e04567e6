"""The real services the tests talk to: where PostgreSQL and Redis are, and private
``redis-server`` processes a test may start and kill to stage an outage.

The shared servers come from ``CHORUSLINE_TEST_POSTGRES_URL`` and
``CHORUSLINE_TEST_REDIS_URL`` (default: the local ones); the fixtures in ``conftest.py``
start a throw-away Redis when nothing answers, and fail with a clear message for
PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading

import pytest
import redis

POSTGRES_URL = os.environ.get(
    "CHORUSLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("CHORUSLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A private ``redis-server`` on a fixed port that can be stopped and started again
    (same port), to stage an outage and a recovery for real."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; these tests need it", pytrace=False)
        self.binary = binary
        self.port = port or free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--loglevel", "notice"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.process = process
        ready = threading.Event()

        def watch() -> None:  # wait for the server's own "ready" line, not for time
            assert process.stdout is not None
            for line in process.stdout:
                if "Ready to accept connections" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=watch, daemon=True).start()
        if not ready.wait(10) or process.poll() is not None:
            self.stop()
            pytest.fail(f"redis-server did not start on port {self.port}", pytrace=False)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


def answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()

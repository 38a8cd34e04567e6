"""``chorusline serve`` with two workers (set through ``CHORUSLINE_WORKERS``): one admin
key, one port served by two processes that got the parent's flags, and SIGTERM drains a
reply in flight before everything exits 0."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from chorusline.store import SqliteStore

MODEL = "smollm2-135m-instruct"


def call(url: str, key: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    return urllib.request.urlopen(request, timeout=120)


def test_two_workers_share_a_port_and_drain_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "workers.db"
    env = dict(os.environ, CHORUSLINE_DATABASE_URL=f"sqlite:///{db}", CHORUSLINE_WORKERS="2")
    with (tmp_path / "stderr.txt").open("w") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "chorusline.cli", "serve", "--port", "0",
             "--kv-cache-mb", "16", "--public-url", "https://chat.example", "--dtype",
             "fp32"],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    try:
        assert server.stdout is not None
        key_line = server.stdout.readline()
        assert "admin API key" in key_line, (tmp_path / "stderr.txt").read_text()
        key = key_line.rsplit(" ", 1)[1].strip()
        ready = server.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/v1", ready)
        assert url and "2 workers" in ready, ready
        base = url.group(0)

        # Both processes answer on the one port (the kernel spreads new connections).
        pids: set[int] = set()
        deadline = time.monotonic() + 60
        while len(pids) < 2 and time.monotonic() < deadline:
            with call(f"{base}/admin/engine", key) as response:
                pids.add(json.load(response)["worker_pid"])
        assert len(pids) == 2 and server.pid not in pids
        # The workers got the parent's flags: a share link starts with the public URL.
        with call(f"{base}/conversations", key, {}) as response:
            cid = json.load(response)["id"]
        with call(f"{base}/conversations/{cid}/share", key, {}) as response:
            share = json.load(response)
        assert share["url"] == f"https://chat.example/v1/shared/{share['token']}"

        # A reply in flight when SIGTERM arrives still completes.
        streaming = call(f"{base}/chat/completions", key, {
            "model": MODEL, "stream": True, "temperature": 0, "max_tokens": 12,
            "messages": [{"role": "user", "content": "What is the capital of France?"}]})
        first = streaming.readline()
        assert first.startswith(b"data: "), first
        server.send_signal(signal.SIGTERM)
        rest = streaming.read().decode()
        streaming.close()
        assert rest.rstrip().endswith("data: [DONE]"), rest
        assert server.wait(timeout=120) == 0, (tmp_path / "stderr.txt").read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    for pid in pids:  # the workers are gone too
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"worker {pid} outlived the server")
    store = SqliteStore(db)
    try:
        admins = [k for u in store.list_users() for k in store.list_api_keys(u.id)
                  if k.is_admin]
    finally:
        store.close()
    assert len(admins) == 1  # created once, by the parent, before the workers


def test_a_worker_count_below_one_is_refused_before_anything_starts(tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    result = subprocess.run(
        [sys.executable, "-m", "chorusline.cli", "serve", "--workers", "0"],
        capture_output=True, text=True, timeout=60, check=False,
        env=dict(os.environ, CHORUSLINE_DATABASE_URL=f"sqlite:///{db}"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("--workers must be at least 1")
    assert not db.exists()  # no database, so no admin key, was created

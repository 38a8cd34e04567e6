"""The README's first command ends in ``chorusline demo``: it must work end to end; and
``serve``'s flags: each documented in ``--help``, each checked before anything starts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import torch

from chorusline.cli import build_parser, serve_settings
from tests.cli_server import running_server


def test_demo_streams_a_reply_through_a_worker_crash() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chorusline.cli", "demo", "--max-tokens", "12"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert "status=complete" in result.stderr
    assert ("/chat/engines/smollm2-135m-instruct/gpu-worker [thread, running, restarts=1]"
            in result.stderr)


def test_bad_arguments_give_a_one_line_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chorusline.cli", "demo", "--max-tokens", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("--max-tokens must be at least 1")


def test_serve_prints_an_admin_key_answers_and_drains_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "srv.db"
    with running_server(db) as (url, key):  # asserts exit 0 on SIGTERM
        request = urllib.request.Request(
            f"{url}/chat/completions",
            data=json.dumps({
                "model": "smollm2-135m-instruct",
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "max_tokens": 12,
                "temperature": 0,
            }).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            body = json.load(response)
        assert "Paris" in body["choices"][0]["message"]["content"]
    assert f"database: sqlite:///{db}" in Path(f"{db}.stderr").read_text()


def call(url: str, key: str, body: Any = None, headers: dict[str, str] | None = None
         ) -> Any:
    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                 **(headers or {})}, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def test_share_links_start_with_the_public_url(tmp_path: Path) -> None:
    with running_server(tmp_path / "srv.db", "--public-url", "https://chat.example/c/") as (
            url, key):
        cid = call(f"{url}/conversations", key, {})["id"]
        share = call(f"{url}/conversations/{cid}/share", key,
                     headers={"Host": "evil.example"})
    assert share["url"] == f"https://chat.example/c/v1/shared/{share['token']}"


def help_entries(text: str) -> dict[str, str]:
    """``--flag`` -> its whole help entry, from argparse's options section."""
    entries: dict[str, str] = {}
    flag = None
    for line in text.split("options:", 1)[1].splitlines():
        if match := re.match(r"  (?:-\w, )?(--[\w-]+)", line):
            flag = match.group(1)
            entries[flag] = line
        elif flag is not None and line.startswith("   "):
            entries[flag] += " " + line.strip()
    return entries


SERVE_FLAGS = {"--host", "--port", "--database-url", "--public-url", "--redis-url",
               "--model", "--fallback", "--alias", "--device", "--dtype", "--tiers-file",
               "--workers",
               "--kv-cache-mb", "--cpu-threads", "--max-body-bytes", "--max-waiting-requests"}


def test_serve_help_gives_every_flag_its_meaning_default_and_variable() -> None:
    result = subprocess.run([sys.executable, "-m", "chorusline.cli", "serve", "--help"],
                            capture_output=True, text=True, timeout=120, check=True,
                            env=dict(os.environ, COLUMNS="100"))
    entries = help_entries(result.stdout)
    assert set(entries) == SERVE_FLAGS | {"--help"}
    for flag in SERVE_FLAGS:
        variable = "CHORUSLINE_" + flag[2:].upper().replace("-", "_")
        meaning, _, rest = entries[flag].partition("(default: ")
        assert re.search(r"[a-z]{3,}", meaning.replace(flag, "")), entries[flag]
        assert re.fullmatch(rf"[^;]+; env {variable}\)", rest.strip()), entries[flag]


def test_the_body_limit_is_a_flag_and_a_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    def limit(*flags: str) -> int:
        found: int = build_parser().parse_args(["serve", *flags]).max_body_bytes
        return found

    monkeypatch.delenv("CHORUSLINE_MAX_BODY_BYTES", raising=False)
    assert limit() == 1024 * 1024
    assert limit("--max-body-bytes", "1024") == 1024
    monkeypatch.setenv("CHORUSLINE_MAX_BODY_BYTES", "2048")
    assert limit() == 2048


def test_max_waiting_requests_reaches_admission(monkeypatch: pytest.MonkeyPatch) -> None:
    def waiting(*flags: str) -> int:
        args = build_parser().parse_args(["serve", "--database-url", "sqlite:///x", *flags])
        return serve_settings(args).limits.max_waiting_requests

    monkeypatch.delenv("CHORUSLINE_MAX_WAITING_REQUESTS", raising=False)
    assert waiting() == 256
    assert waiting("--max-waiting-requests", "8") == 8
    monkeypatch.setenv("CHORUSLINE_MAX_WAITING_REQUESTS", "16")
    assert waiting() == 16


def test_dtype_reaches_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def dtype(*flags: str) -> torch.dtype | None:
        args = build_parser().parse_args(["serve", "--database-url", "sqlite:///x", *flags])
        found: torch.dtype | None = serve_settings(args).engine.dtype
        return found

    monkeypatch.delenv("CHORUSLINE_DTYPE", raising=False)
    assert dtype() is None  # the device decides: fp32 on CPU, bf16 on CUDA
    assert dtype("--dtype", "bf16") is torch.bfloat16
    assert dtype("--dtype", "fp32") is torch.float32
    monkeypatch.setenv("CHORUSLINE_DTYPE", "bf16")
    assert dtype() is torch.bfloat16 and dtype("--dtype", "fp32") is torch.float32


@pytest.mark.parametrize(("flags", "env", "message"), [
    (["--dtype", "fp16"], {}, "invalid choice: 'fp16'"),
    ([], {"CHORUSLINE_DTYPE": "fp16"}, "invalid choice: 'fp16'"),
    ([], {"CHORUSLINE_PORT": "eighty"}, "invalid int value: 'eighty'"),
    (["--public-url", "chat.example"], {}, "is not an http(s)://host[:port][/path] URL"),
    ([], {"CHORUSLINE_PUBLIC_URL": "https://chat.example/?x=1"}, "is not an http(s)"),
    ([], {"CHORUSLINE_KV_CACHE_MB": "0"}, "--kv-cache-mb must be at least 1"),
    (["--max-waiting-requests", "0"], {}, "--max-waiting-requests must be at least 1"),
])
def test_bad_serve_settings_are_one_line_usage_errors(
    tmp_path: Path, flags: list[str], env: dict[str, str], message: str,
) -> None:
    db = tmp_path / "never.db"
    result = subprocess.run(
        [sys.executable, "-m", "chorusline.cli", "serve", *flags], capture_output=True,
        text=True, timeout=120, check=False,
        env=dict(os.environ, CHORUSLINE_DATABASE_URL=f"sqlite:///{db}", **env))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert not db.exists()


def test_top_once_json_reads_a_running_servers_feed(tmp_path: Path) -> None:
    db = tmp_path / "top.db"
    with running_server(db) as (url, key):
        def top(api_key: str, *flags: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "chorusline.cli", "top", "--url", url, *flags],
                capture_output=True, text=True, timeout=120, check=False,
                env=dict(os.environ, CHORUSLINE_KEY=api_key))

        shown = top(key, "--once", "--json")
        assert shown.returncode == 0, shown.stderr
        feed = json.loads(shown.stdout)
        assert feed["hello"]["object"] == "admin.hello"
        assert feed["hello"]["model"] == "smollm2-135m-instruct"
        snapshot = feed["snapshot"]
        assert snapshot["object"] == "admin.snapshot" and snapshot["tree"]["path"] == "/"
        assert snapshot["worker_pid"] == feed["hello"]["worker_pid"]
        assert snapshot["engine"]["engine"]["kv_blocks_total"] > 0
        view = top(key, "--once")
        assert view.returncode == 0, view.stderr
        assert "gpu-worker thread running" in view.stdout and "KV use" in view.stdout
        created = subprocess.run(
            [sys.executable, "-m", "chorusline.cli", "keys", "create", "--owner", "bob"],
            capture_output=True, text=True, timeout=120, check=True,
            env=dict(os.environ, CHORUSLINE_DATABASE_URL=f"sqlite:///{db}"))
        plain = created.stdout.split()[-1]
        refused = top(plain, "--once", "--json")
        assert refused.returncode == 1 and refused.stdout == ""
        assert len(refused.stderr.strip().splitlines()) == 1
        assert "admin flag" in refused.stderr

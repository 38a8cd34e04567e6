"""The README's curl and openai-SDK examples, run as written against ``chorusline serve``;
the server's URL and key reach them through ``CHORUSLINE_URL`` and ``CHORUSLINE_KEY``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli_keys import running_server

README = Path(__file__).resolve().parents[1] / "README.md"


def fenced(language: str, containing: str) -> str:
    blocks = re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.M | re.S)
    matching = [b for b in blocks if containing in b]
    assert len(matching) == 1, f"one ```{language} block with {containing!r}"
    return str(matching[0])


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with running_server(tmp_path_factory.mktemp("readme") / "readme.db") as (url, key):
        yield dict(os.environ, CHORUSLINE_URL=url, CHORUSLINE_KEY=key)


def test_the_curl_example_streams_paris(server_env: dict[str, str]) -> None:
    script = fenced("bash", "curl")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=server_env,
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    events = [e for e in result.stdout.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith(("data: ", ": ")) for e in events), result.stdout
    chunks = [json.loads(e[6:]) for e in events[:-1] if e.startswith("data: ")]
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks]
    assert sum(1 for p in pieces if p) > 1  # streamed in pieces
    assert "Paris" in "".join(p or "" for p in pieces)


def run_python(example: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", example], env=env, capture_output=True,
                            text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_python_example_prints_paris(server_env: dict[str, str]) -> None:
    assert "Paris" in run_python(fenced("python", "reply = client"), server_env)


def test_the_tool_example_makes_a_call_and_answers_with_its_result(
    server_env: dict[str, str],
) -> None:
    called, answer = run_python(fenced("python", "tool_choice="), server_env).split("\n", 1)
    name, arguments = called.split(" ", 1)
    assert name == "get_weather"
    assert "city" in arguments  # the printed dict of validated arguments
    assert answer.strip()


def test_the_structured_output_example_prints_a_validated_object(
    server_env: dict[str, str],
) -> None:
    printed = run_python(fenced("python", "response_format="), server_env)
    assert printed.startswith("country=") and "city=" in printed

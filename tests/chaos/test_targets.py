"""What a spawned target derives: URLs through its proxies, its command, children."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from chorusline.chaos import open_fault_proxy
from chorusline.chaos.targets import Spawned, children, through, upstream


async def test_urls_go_through_the_proxy_with_their_credentials_kept() -> None:
    async with open_fault_proxy(("127.0.0.1", 5432)) as proxy:
        assert through("postgresql://u:pw@db.example:5433/chat?sslmode=disable", proxy) \
            == f"postgresql://u:pw@{proxy.address}/chat?sslmode=disable"
        assert through("redis://127.0.0.1:6379/0", proxy) == f"redis://{proxy.address}/0"
    assert upstream("postgresql://u@db.example/chat", 5432) == ("db.example", 5432)
    assert upstream("redis://10.0.0.2:6380/1", 6379) == ("10.0.0.2", 6380)


def test_the_server_command_names_its_tiers_queue_and_workers(tmp_path: Path) -> None:
    target = Spawned(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", None)
    target.processes = 2
    argv = target.command()
    assert argv[argv.index("--workers") + 1] == "2"
    assert argv[argv.index("--max-waiting-requests") + 1] == "8"
    assert "--redis-url" not in argv
    assert (tmp_path / "tiers.toml").read_text().startswith('default = "free"')
    assert target.url == f"http://127.0.0.1:{target.port}/v1/"


def test_children_lists_a_process_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        assert child.pid in children(os.getpid())
    finally:
        child.kill()
        child.wait()

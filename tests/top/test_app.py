"""``chorusline top`` as a user meets it, against a real (scripted) feed server: ``--once``
and ``--json``, the live view (in a pseudo-terminal, left with Ctrl-C), reconnecting
after a lost feed, and every failure as one line with the right exit status."""

from __future__ import annotations

import fcntl
import io
import json
import os
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import pytest
import trio
from rich.console import Console

from chorusline.cli import main
from chorusline.top import FeedError, run_top
from chorusline.top.app import backoff_delay, follow
from chorusline.top.feed import FeedRefused
from chorusline.top.screen import Screen
from tests.top.feed_server import (
    ADMIN_KEY,
    USER_KEY,
    FeedServer,
    Stream,
    event,
    free_port,
    hello,
    snapshot,
    start,
)

REPO = Path(__file__).resolve().parents[2]


def feed_until_closed(closed: trio.Event | None = None) -> Any:
    """A script: the hello (one event in its backlog), an event, a snapshot, then
    nothing until the client hangs up."""
    async def script(stream: Stream) -> None:
        await stream.send("hello", hello(events=[event(1)]))
        await stream.send("event", event(2, "fault_injected", "/chat/moderation",
                                         action="crash"))
        await stream.send("snapshot", snapshot())
        await stream.wait_closed()
        if closed is not None:
            closed.set()
    return script


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("chorusline: ")
    return lines[0]


def env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHORUSLINE_")}
    return {**clean, "PYTHONPATH": str(REPO), **extra}


# -- --once ------------------------------------------------------------------------------

async def test_once_json_prints_the_hello_and_the_first_snapshot_then_hangs_up(
        nursery: trio.Nursery, capsys: pytest.CaptureFixture[str]) -> None:
    closed = trio.Event()
    server = await start(nursery, FeedServer(feed_until_closed(closed)))
    with trio.fail_after(10):
        status = await run_top(server.url + "/v1", ADMIN_KEY, 0.25, once=True, as_json=True)
        await closed.wait()
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert json.loads(out) == {"hello": hello(events=[event(1)]), "snapshot": snapshot()}
    assert out.count("\n") == 1
    assert server.requests[0].query == {"interval": ["0.25"]}


async def test_once_prints_one_view_with_the_events_that_came_before_the_snapshot(
        nursery: trio.Nursery) -> None:
    server = await start(nursery, FeedServer(feed_until_closed()))
    console = Console(record=True, width=160, file=io.StringIO())
    with trio.fail_after(10):
        assert await run_top(server.url, ADMIN_KEY, once=True, console=console) == 0
    shown = console.export_text()
    assert "gpu-worker thread running" in shown and "41.5" in shown
    assert "restart" in shown and "fault_injected" in shown and "action=crash" in shown


async def test_once_when_the_feed_ends_before_a_snapshot_is_one_line_and_1(
        nursery: trio.Nursery, capsys: pytest.CaptureFixture[str]) -> None:
    async def script(stream: Stream) -> None:
        await stream.send("hello", hello())

    server = await start(nursery, FeedServer(script))
    with trio.fail_after(10):
        assert await run_top(server.url, ADMIN_KEY, once=True, as_json=True) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert one_line(err).endswith("ended the feed before its first snapshot")


async def test_once_interrupted_is_130_without_output(
        nursery: trio.Nursery, capsys: pytest.CaptureFixture[str]) -> None:
    async def script(stream: Stream) -> None:
        await stream.send("hello", hello())  # and no snapshot, ever
        await stream.wait_closed()

    server = await start(nursery, FeedServer(script))
    done = trio.Event()
    status: list[int] = []

    async def top() -> None:
        status.append(await run_top(server.url, ADMIN_KEY, once=True, as_json=True))
        done.set()

    with trio.fail_after(10):
        nursery.start_soon(top)
        await server.wait_until(lambda: bool(server.requests))
        os.kill(os.getpid(), signal.SIGINT)  # run_top holds SIGINT once it connects
        await done.wait()
    assert status == [130]
    assert capsys.readouterr() == ("", "")


# -- failures to start -------------------------------------------------------------------

@pytest.mark.parametrize("once", [True, False], ids=["once", "live"])
@pytest.mark.parametrize(("key", "status"), [("sk-nope", 401), (USER_KEY, 403)])
async def test_a_refused_key_is_one_line_and_1_without_drawing_anything(
        nursery: trio.Nursery, capsys: pytest.CaptureFixture[str], once: bool, key: str,
        status: int) -> None:
    server = await start(nursery, FeedServer(feed_until_closed()))
    console = Console(file=io.StringIO(), force_terminal=True)
    with trio.fail_after(10):
        assert await run_top(server.url, key, once=once, console=console) == 1
    out, err = capsys.readouterr()
    assert f"refused the key (HTTP {status})" in one_line(err)
    assert out == "" and console.file.getvalue() == ""  # type: ignore[attr-defined]
    assert len(server.requests) == 1  # never retried


async def test_nobody_listening_is_one_line_and_1(
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with trio.fail_after(20):
        assert await run_top(url, ADMIN_KEY, console=Console(file=io.StringIO())) == 1
    assert one_line(capsys.readouterr().err).startswith(f"chorusline: cannot reach {url}")


# -- the live view -----------------------------------------------------------------------

class Terminal(io.StringIO):
    """What a console writes, with a way to wait for some text to appear in it."""

    def __init__(self) -> None:
        super().__init__()
        self._written = trio.Event()

    def write(self, text: str) -> int:
        self._written.set()
        self._written = trio.Event()
        return super().write(text)

    async def shows(self, text: str) -> None:
        while text not in self.getvalue():
            await self._written.wait()


async def test_live_shows_a_lost_feed_reconnects_and_leaves_on_sigint(
        nursery: trio.Nursery) -> None:
    async def script(stream: Stream) -> None:
        if stream.index == 0:
            await stream.send("hello", hello())
            await stream.send("snapshot", snapshot())
            await stream.drop()
        await stream.send("hello", hello(events=[event(7, "escalated", "/chat/again")]))
        await stream.wait_closed()

    server = await start(nursery, FeedServer(script))
    terminal = Terminal()
    console = Console(file=terminal, force_terminal=True, width=160, height=40)
    done = trio.Event()
    status: list[int] = []

    async def top() -> None:
        status.append(await run_top(server.url, ADMIN_KEY, 0.25, console=console))
        done.set()

    with trio.fail_after(20):
        nursery.start_soon(top)
        await terminal.shows("gpu-worker")
        await terminal.shows("● lost: lost the connection to")
        await terminal.shows("/chat/again")  # the second connection's backlog
        assert len(server.requests) == 2
        os.kill(os.getpid(), signal.SIGINT)  # run_top holds SIGINT while it runs
        await done.wait()
    assert status == [0]
    written = terminal.getvalue()
    assert written.index("\x1b[?1049h") < written.rindex("\x1b[?1049l")  # screen restored


async def test_follow_retries_a_lost_feed_but_never_a_refusal(
        nursery: trio.Nursery) -> None:
    async def script(stream: Stream) -> None:
        await stream.send("hello", hello(events=[event(stream.index)]))
        await stream.send("snapshot", snapshot())
        if stream.index == 0:
            await stream.drop()
        # the second connection ends the feed cleanly: lost too, from the third on the
        # key is "revoked"

    server = await start(nursery, FeedServer(script, revoke_from=2))
    screen = Screen(server=server.url)
    states: list[str] = []
    delays: list[int] = []

    def changed() -> None:
        if not states or states[-1] != screen.connection:
            states.append(screen.connection)

    def backoff(attempt: int) -> float:
        delays.append(attempt)
        return 0.0

    with trio.fail_after(10), pytest.raises(FeedRefused, match="HTTP 401"):
        await follow(server.url, ADMIN_KEY, 1.0, screen, changed, backoff=backoff)
    assert len(server.requests) == 3
    assert [s.split(";")[0].split(":")[0] for s in states] == [
        "live", "lost", "connecting", "live", "lost", "connecting"]
    assert "ended the feed" in states[4]
    assert delays == [0, 0]  # each hello restarts the backoff
    assert [e["seq"] for e in screen.events] == [1]


async def test_follow_raises_when_the_first_connection_fails() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with trio.fail_after(20), pytest.raises(FeedError, match="cannot reach"):
        await follow(url, ADMIN_KEY, 1.0, Screen(server=url), lambda: None)


def test_backoff_doubles_up_to_ten_seconds() -> None:
    assert [backoff_delay(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 10, 10, 10]


async def test_in_a_terminal_ctrl_c_leaves_cleanly_with_status_0(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    """The real command in a pseudo-terminal: rich takes the alternate screen, draws the
    snapshot, and SIGINT (what Ctrl-C sends) ends it with 0, no traceback."""
    server = await start(nursery, FeedServer(feed_until_closed()))
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    errors = tmp_path / "stderr"
    with errors.open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "chorusline.cli", "top", "--url", server.url],
            stdin=slave, stdout=slave, stderr=stderr,
            env=env(CHORUSLINE_KEY=ADMIN_KEY, TERM="xterm-256color", COLUMNS="160",
                    LINES="40"))
    os.close(slave)
    screen = bytearray()
    async with trio.lowlevel.FdStream(master) as terminal:
        with trio.fail_after(30):
            while b"gpu-worker" not in screen:
                chunk = await terminal.receive_some()
                assert chunk, "the terminal closed before the view was drawn"
                screen += chunk
            process.send_signal(signal.SIGINT)
            while True:  # drain, so the child never blocks writing its last frame
                try:
                    chunk = await terminal.receive_some()
                except trio.BrokenResourceError:  # EIO: the child is gone, so is the tty
                    break
                if not chunk:
                    break
                screen += chunk
            assert await process.wait() == 0
    assert errors.read_text() == ""
    assert screen.index(b"\x1b[?1049h") < screen.rindex(b"\x1b[?1049l")  # restored


# -- the command line --------------------------------------------------------------------

async def test_the_command_reads_its_url_and_key_from_the_environment(
        nursery: trio.Nursery) -> None:
    server = await start(nursery, FeedServer(feed_until_closed()))
    with trio.fail_after(30):
        result = await trio.run_process(
            [sys.executable, "-m", "chorusline.cli", "top", "--once", "--json",
             "--interval", "2"], capture_stdout=True, capture_stderr=True, check=False,
            env=env(CHORUSLINE_URL=server.url + "/v1/", CHORUSLINE_KEY=ADMIN_KEY))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["snapshot"] == snapshot()
    assert server.requests[0].target == "/v1/admin/events?interval=2"


async def test_the_command_refused_is_one_line_on_stderr_and_1(
        nursery: trio.Nursery) -> None:
    server = await start(nursery, FeedServer(feed_until_closed()))
    with trio.fail_after(30):
        result = await trio.run_process(
            [sys.executable, "-m", "chorusline.cli", "top", "--url", server.url, "--key",
             "sk-wrong"], capture_stdout=True, capture_stderr=True, check=False, env=env())
    assert result.returncode == 1
    assert result.stdout == b""
    assert one_line(result.stderr.decode()) == (
        "chorusline: the server refused the key (HTTP 401): invalid API key")


async def test_the_command_imports_no_model_stack() -> None:
    code = ("import sys; from chorusline.cli import main; status = main(sys.argv[1:]); "
            "print(sorted({'torch', 'chorusline.runtime', 'chorusline.web'} "
            "& set(sys.modules))); sys.exit(status)")
    url = f"http://127.0.0.1:{free_port()}"
    with trio.fail_after(30):
        result = await trio.run_process(
            [sys.executable, "-c", code, "top", "--once", "--url", url, "--key", "k"],
            capture_stdout=True, capture_stderr=True, check=False, env=env())
    assert result.returncode == 1
    assert result.stdout.decode().strip() == "[]"
    assert "cannot reach" in one_line(result.stderr.decode())


@pytest.mark.parametrize(("argv", "variables", "message"), [
    (["top"], {}, "no API key: pass --key or set CHORUSLINE_KEY"),
    (["top", "--key", "  "], {}, "no API key"),
    (["top", "--key", "sk\nx"], {}, "characters no API key has"),
    (["top", "--json"], {"CHORUSLINE_KEY": "k"}, "--json needs --once"),
    (["top", "--key", "k", "--interval", "0.1"], {}, "--interval must be between 0.25 and 10"),
    (["top", "--key", "k", "--interval", "11"], {}, "--interval must be between"),
    (["top", "--key", "k", "--interval", "nan"], {}, "--interval must be between"),
    (["top", "--key", "k", "--url", "localhost:8000"], {}, "--url: "),
    (["top", "--key", "k"], {"CHORUSLINE_URL": "ftp://x"}, "--url: 'ftp://x' is not"),
])
def test_usage_errors_are_status_2_with_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        argv: list[str], variables: dict[str, str], message: str) -> None:
    for name in ("CHORUSLINE_URL", "CHORUSLINE_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.splitlines()  # argparse's usage line, then the error
    assert err[0].startswith("usage: chorusline ")
    assert err[-1].startswith("chorusline: error: ") and message in err[-1]


def test_help_names_both_variables() -> None:
    result = subprocess.run([sys.executable, "-m", "chorusline.cli", "top", "--help"],
                            capture_output=True, text=True, timeout=60, check=False,
                            env=env())
    assert result.returncode == 0
    assert "env CHORUSLINE_URL" in result.stdout and "env CHORUSLINE_KEY" in result.stdout

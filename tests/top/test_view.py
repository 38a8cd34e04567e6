"""chorusline.top's state and drawing: a sample snapshot rendered to a recording console
(160 columns) shows every panel's figures; strings from the feed show exactly as sent,
never as rich markup or terminal escapes; odd or missing fields never raise."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console

from chorusline.top.format import clean, short_id, summary
from chorusline.top.screen import EVENTS_SHOWN, Screen
from chorusline.top.view import CHILDREN_SHOWN, layout, render
from tests.top.feed_server import event, hello, node, snapshot

HOSTILE = "[bold red]x[/]"
IMG = "<img src=x onerror=alert(1)>"


def screen_of(*messages: tuple[str, dict[str, Any]]) -> Screen:
    screen = Screen(server="http://127.0.0.1:8000", connection="live")
    for name, payload in messages:
        screen.apply(name, payload)
    return screen


def text_of(screen: Screen, *, terminal: bool = False) -> str:
    console = Console(record=True, width=160, file=io.StringIO(), force_terminal=terminal,
                      color_system="truecolor" if terminal else None)
    console.print(render(screen))
    return console.export_text()


def sample() -> Screen:
    return screen_of(("hello", hello(events=[event(1)])), ("snapshot", snapshot()),
                     ("event", event(2, "actor_crashed", "/chat/conversations/conv-1",
                                     actor_class="Conversation",
                                     failure={"type": "KeyError", "message": "'turn'",
                                              "traceback": ["x.py:1 in f"]})))


def test_the_view_shows_the_tree_engine_requests_and_events() -> None:
    shown = text_of(sample())
    # header
    assert "chorusline top" in shown and "http://127.0.0.1:8000" in shown
    assert "pid 4242" in shown and "model smollm2-135m-instruct" in shown
    assert "● live" in shown
    # tree: names, kinds, states and statistics
    assert "conversations supervisor running  mbox 3/64" in shown
    assert "children 2" in shown
    assert "gpu-worker thread running  mbox 0/64  proc 120  fail 0  restarts 1" in shown
    # engine
    for figure in ("output tok/s", "41.5", "prompt tok/s", "310.0", "queue depth",
                   "3 (mean 2.5, max 8)", "240 / 610 ms (17 turns/60 s)",
                   "75.0% (96/128 blocks)", "12.5"):
        assert figure in shown, figure
    # requests: a shortened id, the tenant, the state and the times
    assert "requests in flight (1)" in shown
    assert short_id("chatcmpl-0123456789abcdef0123") == "chatcmpl-0123…0123"
    line = next(row for row in shown.splitlines() if "chatcmpl-0123…0123" in row)
    assert line.split()[2:10] == ["user-ada", "free", "decode", "41", "12", "1.4", "s", "240"]
    # events: the backlog's, then the live one; a failure as "Type: message"
    assert "restart" in shown and "reason=crashed delay=0.5" in shown
    assert "actor_crashed" in shown and "/chat/conversations/conv-1" in shown
    assert "actor_class=Conversation KeyError: 'turn'" in shown
    assert "x.py:1" not in shown  # tracebacks are for the console page


def test_feed_strings_show_literally_never_as_markup_or_escapes() -> None:
    tree = node("/", "supervisor", children=[
        node(f"/chat/{HOSTILE}", name=HOSTILE, state="dead",
             failed=1, last_failure={"type": "ValueError", "message": "[link=x]y[/link]"}),
        node("/chat/\x1b[2Jclear\u202eevil\nnext"),
    ])
    request = {"request_id": "chatcmpl-1", "tenant": IMG, "tier": "[i]free[/i]",
               "state": "queued", "age_ms": 5}
    screen = screen_of(("hello", hello(events=[event(1, "restart", f"/x/{HOSTILE}")])),
                       ("snapshot", snapshot(tree=tree, requests=[request])))
    shown = text_of(screen)
    assert f"{HOSTILE} actor dead" in shown
    assert "last: ValueError: [link=x]y[/link]" in shown
    assert IMG in shown and "[i]free[/i]" in shown
    assert f"/x/{HOSTILE}" in shown
    assert "\\x1b[2Jclear\\u202eevil next" in shown
    # On a real terminal: styled, but the feed's ESC never reaches it raw.
    ansi = Console(file=io.StringIO(), width=160, force_terminal=True,
                   color_system="truecolor")
    ansi.print(render(screen))
    written = ansi.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[2J" not in written and "\u202e" not in written
    assert "\x1b[" in written  # it is styled, so the check above means something


def test_clean_keeps_text_and_escapes_controls() -> None:
    assert clean("conv-é 東京 😀") == "conv-é 東京 😀"
    assert clean("a\tb\r\nc\u2028d") == "a b  c d"
    assert clean("\x07\x1b\x9b\u200f\ud800") == "\\x07\\x1b\\x9b\\u200f\\ud800"
    assert clean(42) == "42"
    assert summary({"failure": {"type": "E", "message": "two\nlines"}, "n": None}) == \
        "E: two lines"


def test_a_restarting_gpu_worker_and_odd_fields_do_not_break_the_view() -> None:
    odd = snapshot(tree=node("/", "supervisor", processed="lots", mailbox_depth=None,
                             children=[{"name": "bare"}, "not a node"]),
                   requests=[{"request_id": None, "age_ms": "old"}, "junk"])
    odd["engine"] = {"driver": None, "engine": None, "rates": [], "ttft_ms": {}}
    odd["faults"] = {"/": {"action": "crash", "on_message": "Ask"}}
    odd["dead_letters"] = {"count": 3}
    shown = text_of(screen_of(("snapshot", odd)))
    assert re.search(r"GPU worker +restarting", shown)
    assert "proc lots" in shown and "bare ? " in shown
    assert "fault: action=crash on_message=Ask" in shown
    assert "1 fault injected" in shown and "3 dead letters" in shown
    assert "requests in flight (1)" in shown
    assert "pid 4242" in shown and "—" in shown


def test_before_the_first_snapshot_every_panel_says_so() -> None:
    shown = text_of(Screen(server="http://h"))
    for line in ("● connecting", "waiting for the first snapshot", "no engine figures yet",
                 "no requests in flight", "no events yet", "pid —"):
        assert line in shown, line


def test_a_wide_node_shows_its_busiest_children_and_counts_the_rest() -> None:
    kids = [node(f"/c/conv-{i}", mailbox_depth=i) for i in range(30)]
    tree = node("/c", "supervisor", children=kids, children_total=500)
    shown = text_of(screen_of(("snapshot", snapshot(tree=tree))))
    assert "conv-29 " in shown and f"conv-{30 - CHILDREN_SHOWN} " in shown
    assert f"conv-{29 - CHILDREN_SHOWN} " not in shown
    assert (f"… {500 - CHILDREN_SHOWN} more (500 children in all; the server sent the "
            "busiest 30)") in shown


def test_apply_folds_messages_in() -> None:
    screen = screen_of(("hello", hello(events=[event(i) for i in range(15)])))
    assert [e["seq"] for e in screen.events] == list(range(15 - EVENTS_SHOWN, 15))
    assert screen.apply("event", event(15))
    assert screen.events[-1]["seq"] == 15 and len(screen.events) == EVENTS_SHOWN
    assert screen.apply("gap", {"skipped": 4}) and screen.apply("gap", {"skipped": "x"})
    assert screen.skipped == 4
    assert "4 feed messages skipped" in text_of(screen)
    assert not screen.apply("trace", {"request_id": "r"})
    assert not screen.apply("from-the-future", {})
    # A reconnect: the new hello's backlog replaces the old, the skipped count restarts.
    assert screen.apply("hello", hello(events=[event(99)]))
    assert [e["seq"] for e in screen.events] == [99] and screen.skipped == 0


@pytest.mark.parametrize("height", [24, 50])
def test_the_live_layout_fills_the_terminal_exactly(height: int) -> None:
    screen = sample()
    console = Console(record=True, width=160, height=height, file=io.StringIO())
    console.print(layout(screen))
    lines = console.export_text().splitlines()
    assert len(lines) == height
    assert "chorusline top" in lines[1] and "requests in flight (1)" in "\n".join(lines)

"""The console page (``chorusline/web/console/static``) in a real headless Chromium
(Debian's ``chromium``, driven by Playwright) against a real server: the key gate, the
tree, a streamed turn in the requests table and then in the trace, the fault buttons and
what they do to live actors and streams, and hostile text staying text.

Playwright's sync API runs in one worker thread per test; the server runs in the test's
trio run, and the browser thread reaches back into it with ``trio.from_thread``. Panels
are saved as screenshots (into ``$CHORUSLINE_SCREENSHOTS`` when set: that is how the
pictures in docs/console.md are made)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio
from playwright.sync_api import Browser, Page, expect

from chorusline.chat import AdmissionLimits
from chorusline.runtime import LoadedModel
from tests.web.browser import WAIT_MS, shots, with_browser
from tests.web.conftest import Web, gated_server
from tests.web.test_admin import admin_key

WORKER = "/chat/engines/smollm2-135m-instruct/gpu-worker"


def snap(page: Page, folder: Path, panel: str) -> None:
    target = folder / f"{panel}.png"
    page.locator(f"#panel-{panel}").screenshot(path=str(target))
    assert target.stat().st_size > 1000


async def in_browser(web: Web, scenario: Callable[[Page], None]) -> None:
    """Run ``scenario`` on a fresh page at /console; any script error fails the test."""
    def run() -> None:
        errors: list[str] = []

        def use(browser: Browser) -> None:
            page = browser.new_page(viewport={"width": 1500, "height": 1400})
            page.set_default_timeout(WAIT_MS)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("dialog", lambda dialog: errors.append(f"a dialog: {dialog.message}"))
            page.goto(f"http://127.0.0.1:{web.port}/console")
            scenario(page)

        with_browser(use)
        assert errors == []

    await trio.to_thread.run_sync(run)


def sign_in(page: Page, key: str) -> None:
    page.fill("#key-input", key)
    page.click("#key-submit")
    expect(page.locator("#status")).to_have_text("live")


@dataclass
class Held:
    """A server whose engine holds every step until ``gate`` is set, with one stored
    conversation, and a way for the browser thread to start a streamed turn in it."""

    web: Web
    key: str
    gate: threading.Event
    nursery: trio.Nursery
    conversation: str
    #: Each finished turn's status and the tail of its SSE body.
    results: list[str] = field(default_factory=list)

    def start_turn(self, max_tokens: int) -> None:
        """From the browser thread: stream a turn in the server's trio run."""
        trio.from_thread.run_sync(self.nursery.start_soon, self._turn, max_tokens)

    async def _turn(self, max_tokens: int) -> None:
        async with httpx.AsyncClient(timeout=300) as client:
            response = await client.post(
                f"{self.web.base_url}/conversations/{self.conversation}/messages",
                headers={"Authorization": f"Bearer {self.web.key}"},
                json={"content": "Count slowly.", "max_tokens": max_tokens,
                      "ignore_eos": True, "temperature": 0, "stream": True})
            self.results.append(f"{response.status_code} {response.text[-200:]}")


@asynccontextmanager
async def held_server(chat_model: LoadedModel, tmp_path: Path) -> AsyncIterator[Held]:
    gate, entered = threading.Event(), threading.Event()
    async with gated_server(chat_model, tmp_path, AdmissionLimits(), gate, entered) as web, \
            trio.open_nursery() as nursery:
        conversation = web.chat.store.create_conversation(web.user_id, title="t").id
        yield Held(web, admin_key(web), gate, nursery, conversation)


async def test_a_key_without_the_admin_flag_is_refused(web: Web) -> None:
    def scenario(page: Page) -> None:
        page.fill("#key-input", web.key)
        page.click("#key-submit")
        expect(page.locator("#key-error")).to_contain_text("admin flag")
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#console .tree-node")).to_have_count(0)

    await in_browser(web, scenario)


async def test_a_streamed_turn_shows_in_the_requests_table_then_as_a_waterfall(
        chat_model: LoadedModel, tmp_path: Path) -> None:
    folder = shots(tmp_path)
    async with held_server(chat_model, tmp_path) as held:
        web, key, gate = held.web, held.key, held.gate
        def scenario(page: Page) -> None:
            sign_in(page, key)
            expect(page.locator(f'.tree-node[data-path="{WORKER}"]')).to_be_visible()
            held.start_turn(24)
            row = page.locator("#request-table tbody tr[data-request-id]")
            expect(row.locator(".state")).to_have_text("prefill")
            request_id = row.get_attribute("data-request-id")
            expect(row).to_contain_text(web.user_id[:8])
            snap(page, folder, "requests")
            gate.set()
            item = page.locator(f'#recent-traces li[data-request-id="{request_id}"]')
            expect(item).to_contain_text("complete")
            item.click()
            view = page.locator("#trace-view")
            for name in ("accept", "session", "bucket", "conversation", "history",
                         "moderation", "begin_turn", "draft", "admission", "queue",
                         "prefill", "first_token", "decode", "persist", "final_chunk"):
                expect(view.locator(f'.span[data-span="{name}"]')).to_have_count(1)
            expect(row).to_have_count(0)
            expect(page.locator("#block-map > *").first).to_be_visible()
            for panel in ("trace", "engine", "tree", "processes"):
                snap(page, folder, panel)

        await in_browser(web, scenario)
    assert held.results and held.results[0].startswith("200")
    assert "[DONE]" in held.results[0]


async def test_the_fault_button_crashes_a_conversation_and_its_restart_shows(
        web: Web, tmp_path: Path) -> None:
    key = admin_key(web)
    conversation = web.chat.store.create_conversation(web.user_id, title="t").id
    path = f"/chat/conversations/conv-{conversation}"
    turn = {"content": "Name a fruit.", "max_tokens": 2}

    async def post_turn() -> int:
        async with httpx.AsyncClient(timeout=120) as client:
            response = await client.post(
                f"{web.base_url}/conversations/{conversation}/messages", json=turn,
                headers={"Authorization": f"Bearer {web.key}"})
            return response.status_code

    assert await post_turn() == 200
    folder = shots(tmp_path)

    def scenario(page: Page) -> None:
        sign_in(page, key)
        node = page.locator(f'.tree-node[data-path="{path}"]').first
        restarts = node.locator(".restarts").first
        expect(restarts).to_have_text("0")
        node.locator(".fault-pick").first.click()
        expect(page.locator("#fault-path")).to_have_value(path)
        page.select_option("#fault-action", "crash")
        page.click("#fault-submit")
        expect(page.locator("#fault-confirm")).to_be_visible()
        page.click("#fault-confirm-yes")
        expect(page.locator(f'#active-faults li[data-path="{path}"]')).to_be_visible()
        expect(page.locator(f'#events-list li[data-kind="fault_injected"]'
                            f'[data-path="{path}"]')).to_have_count(1)
        snap(page, folder, "faults")
        assert trio.from_thread.run(post_turn) == 503  # the crash hit this turn
        expect(restarts).to_have_text("1")
        expect(page.locator(f'#events-list li[data-kind="restart"][data-path="{path}"]')
               ).to_have_count(1)
        expect(page.locator(f'#events-list li[data-kind="actor_crashed"]'
                            f'[data-path="{path}"]')).to_have_count(1)
        expect(page.locator("#active-faults li[data-path]")).to_have_count(0)
        page.locator(f'#process-table tr[data-path="{path}"]').click()
        expect(page.locator("#process-detail")).to_contain_text("InjectedFault")
        snap(page, folder, "events")
        assert trio.from_thread.run(post_turn) == 200  # the new incarnation serves

    await in_browser(web, scenario)


async def test_killing_the_gpu_worker_mid_stream_leaves_the_stream_running(
        chat_model: LoadedModel, tmp_path: Path) -> None:
    async with held_server(chat_model, tmp_path) as held:
        web, key, gate = held.web, held.key, held.gate

        def scenario(page: Page) -> None:
            sign_in(page, key)
            held.start_turn(250)
            row = page.locator("#request-table tbody tr[data-request-id]")
            expect(row.locator(".state")).to_have_text("prefill")
            page.locator(f'.tree-node[data-path="{WORKER}"] .fault-pick').first.click()
            page.select_option("#fault-action", "kill")
            page.click("#fault-submit")
            page.click("#fault-confirm-yes")
            expect(page.locator(f'#events-list li[data-kind="fault_injected"]'
                                f'[data-path="{WORKER}"]')).to_have_count(1)
            gate.set()  # the killed worker finishes its step and goes; a new one starts
            expect(page.locator('#events-list li[data-kind="requeued"]')).to_have_count(1)
            expect(page.locator(f'.tree-node[data-path="{WORKER}"] .restarts').first
                   ).to_have_text("1")
            # The stream carries on: still in the table, now decoding again.
            expect(row).to_have_count(1)
            expect(row.locator(".state")).to_have_text("decode")
            row.locator("button.abort").click()  # and the abort button ends it
            page.click("#abort-confirm-yes")
            expect(row).to_have_count(0)
            expect(page.locator('#events-list li[data-kind="request_aborted"]')
                   ).to_have_count(1)

        await in_browser(web, scenario)
        await web.handles[-1].persisted.wait()
    assert held.results and held.results[0].startswith("200")
    assert '"finish_reason":"abort"' in held.results[0].replace(" ", "")


async def test_hostile_text_from_the_feed_stays_text(web: Web) -> None:
    hostile = '<img src=x onerror="document.title=\'pwned\'">'
    key = admin_key(web)
    web.chat.system.recorder.record("actor_crashed", f"/chat/{hostile}",
                                    actor_class=hostile, reason=f"<script>{hostile}")

    def scenario(page: Page) -> None:
        sign_in(page, key)
        event = page.locator('#events-list li[data-kind="actor_crashed"]').first
        expect(event).to_contain_text(hostile)
        page.fill("#fault-path", f"/chat/{hostile}")
        page.click("#fault-submit")
        page.click("#fault-confirm-yes")
        expect(page.locator("#fault-result")).to_contain_text("no live actor")
        assert page.locator("#console img, #console script").count() == 0
        assert page.title() != "pwned"

    await in_browser(web, scenario)
    assert web.chat.admin.active_faults() == {}


async def test_a_cross_site_form_post_injects_nothing(web: Web) -> None:
    """A page on another origin posts a form at the fault route, as a CSRF attack would:
    the browser sends no key (and a form body), and nothing changes."""
    target = f"http://127.0.0.1:{web.port}/v1/admin/faults"
    attack = (f'<form id="f" method="POST" action="{target}" enctype="text/plain">'
              f'<input name=\'{{"path": "/chat/sessions", "action": "kill", "x": "\' '
              f'value=\'"}}\'></form>')

    def scenario(page: Page) -> None:
        page.route("http://evil.test/", lambda route: route.fulfill(
            status=200, content_type="text/html", body=attack))
        page.goto("http://evil.test/")
        with page.expect_navigation():
            page.evaluate("document.getElementById('f').submit()")
        assert "invalid_api_key" in page.content()

    await in_browser(web, scenario)
    assert web.chat.admin.active_faults() == {}
    assert web.chat.system.lookup("/chat/sessions") is not None


"""The chat page (``chorusline/web/chat/static``) in a real headless Chromium against a
real server: sign-in, a reply that visibly streams, Stop, edit and the branch switch that
survives a reload, a 429 with its countdown, hostile replies kept inert, and logout
killing the old cookie. Like the console's tests, Playwright's sync API runs on a worker
thread and reaches back into the server's trio run with ``trio.from_thread``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import trio
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Route, expect

from chorusline.chat import AdmissionLimits
from chorusline.runtime import LoadedModel
from chorusline.store import MessageStatus, Role
from tests.web.browser import WAIT_MS, shots, with_browser
from tests.web.conftest import Web, gated_server

PASSWORD = "correct horse"


async def in_browser(web: Web, scenario: Callable[[BrowserContext, str], None]) -> None:
    """Run ``scenario`` in a fresh browser context; any script error fails the test."""
    base = f"http://127.0.0.1:{web.port}"

    def run() -> None:
        errors: list[str] = []

        def use(browser: Browser) -> None:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(WAIT_MS)
            context.on("weberror", lambda error: errors.append(str(error.error)))
            scenario(context, base)

        with_browser(use)
        assert errors == []

    await trio.to_thread.run_sync(run)


def sign_in(page: Page, base: str, name: str = "ann") -> None:
    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/login")
    page.fill("#login-name", name)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#user-name")).to_have_text(name)


def send(page: Page, text: str) -> None:
    page.fill("#prompt", text)
    page.click("#send")


#: How long a test waits for a streamed reply to end: a bound on a hang, not a speed.
REPLY_TIMEOUT_MS = 120_000


def stop_a_held_reply(page: Page, gate: threading.Event, entered: threading.Event,
                      stop: Callable[[], None]) -> Locator:
    """Send a turn the gated engine holds at its first step, ``stop`` it, let the engine
    go, and see the reply marked stopped; returns the reply."""
    send(page, "Count slowly to one hundred.")
    expect(page.locator("#stop")).to_be_visible()
    assert entered.wait(60)
    stop()
    gate.set()
    reply = page.locator('#thread .message[data-role="assistant"]')
    expect(reply.locator(".status")).to_have_text("stopped (incomplete)")
    return reply


async def test_sign_in_stream_a_reply_and_sign_out(web: Web, tmp_path: Path) -> None:
    await web.chat.accounts.create_person("ann", PASSWORD)
    folder = shots(tmp_path)

    def scenario(context: BrowserContext, base: str) -> None:
        page = context.new_page()
        page.goto(f"{base}/login")
        page.fill("#login-name", "ann")
        page.fill("#login-password", "wrong password")
        page.click("#login-submit")
        expect(page.locator("#login-error")).not_to_be_empty()
        sign_in(page, base)
        # Record the reply's length each time the DOM changes: a real stream grows.
        page.evaluate("""() => {
            window.lengths = [];
            new MutationObserver(() => {
                const last = [...document.querySelectorAll(
                    '#thread .message[data-role="assistant"] .content')].pop();
                if (last) window.lengths.push(last.textContent.length);
            }).observe(document.querySelector('#thread'),
                       {subtree: true, childList: true, characterData: true});
        }""")
        send(page, "Tell me a short story about a lighthouse.")
        expect(page.locator("#stop")).to_be_visible()
        expect(page.locator("#stop")).to_be_hidden(timeout=REPLY_TIMEOUT_MS)
        lengths = page.evaluate("window.lengths")
        growth = sorted({n for n in lengths if n > 0})
        assert len(growth) >= 3, lengths  # seen growing several times before the end
        messages = page.locator("#thread .message")
        expect(messages).to_have_count(2)
        expect(page.locator("#conversations li[data-conversation-id]")).to_have_count(1)
        page.screenshot(path=str(folder / "chat.png"))
        cookies = context.cookies()
        page.click("#logout")
        expect(page).to_have_url(f"{base}/login")
        thief = context.browser.new_context() if context.browser else None
        assert thief is not None
        thief.add_cookies(cookies)
        answer = thief.request.get(f"{base}/v1/me")
        assert answer.status == 401
        thief.close()

    await in_browser(web, scenario)


async def test_stop_edit_and_switch_branches_survive_a_reload(
        chat_model: LoadedModel, tmp_path: Path) -> None:
    gate, entered = threading.Event(), threading.Event()
    folder = shots(tmp_path)
    async with gated_server(chat_model, tmp_path, AdmissionLimits(), gate, entered) as web:
        await web.chat.accounts.create_person("ann", PASSWORD)

        def scenario(context: BrowserContext, base: str) -> None:
            page = context.new_page()
            sign_in(page, base)
            reply = stop_a_held_reply(page, gate, entered, lambda: page.click("#stop"))
            page.reload()
            expect(reply.locator(".status")).to_have_text("stopped (incomplete)")
            # Edit the question: a sibling branch, with its 2 / 2 switch.
            question = page.locator('#thread .message[data-role="user"]').first
            question.locator("button.edit").click()
            question.locator("textarea").fill("Name one colour.")
            question.locator("button.save").click()
            # The edited turn streams a whole reply: on a loaded machine that can outlast
            # Playwright's 5 s default, so wait on the switch itself (a hang guard).
            expect(question.locator(".siblings .position")).to_have_text(
                "2 / 2", timeout=REPLY_TIMEOUT_MS)
            expect(page.locator("#stop")).to_be_hidden()
            question.locator(".siblings button.prev").click()
            expect(question.locator(".siblings .position")).to_have_text("1 / 2")
            expect(question.locator(".content")).to_have_text("Count slowly to one hundred.")
            page.reload()
            expect(question.locator(".siblings .position")).to_have_text("1 / 2")
            expect(question.locator(".content")).to_have_text("Count slowly to one hundred.")
            page.screenshot(path=str(folder / "branches.png"))

        await in_browser(web, scenario)
        user = await web.chat.accounts.user_named("ann")
        assert user is not None
        (conversation,) = web.chat.store.list_conversations(user.id).items
        stopped = next(m for m in web.chat.store.get_message_tree(user.id, conversation.id)
                       if m.role is Role.ASSISTANT)
        assert (stopped.status, stopped.finish_reason) == (MessageStatus.INCOMPLETE, "abort")


async def test_versions_are_ordered_by_seq_not_by_the_clock(web: Web) -> None:
    """An edit made in the same second as its original ties on ``created_at`` (whole
    seconds); the page orders versions by ``seq``. The tree's clocks are rewritten so the
    edit looks older: a page that sorted by time would show it as 1 / 2."""
    ann = await web.chat.accounts.create_person("ann", PASSWORD)
    store = web.chat.store
    conversation = store.create_conversation(ann.id)
    first = store.append_message(ann.id, conversation.id, role=Role.USER, content="First.")
    store.edit_message(ann.id, conversation.id, first.id, "Second.")

    def scenario(context: BrowserContext, base: str) -> None:
        def backwards_clock(route: Route) -> None:
            body = route.fetch().json()
            for message in body["data"]:
                message["created_at"] = 2_000_000_000 - message["seq"]
            route.fulfill(json=body)

        page = context.new_page()
        sign_in(page, base)
        page.route("**/messages?tree=true", backwards_clock)
        page.goto(f"{base}/#c={conversation.id}")
        question = page.locator('#thread .message[data-role="user"]').first
        expect(question.locator(".content")).to_have_text("Second.")
        expect(question.locator(".siblings .position")).to_have_text("2 / 2")
        question.locator(".siblings button.prev").click()
        expect(question.locator(".content")).to_have_text("First.")
        expect(question.locator(".siblings .position")).to_have_text("1 / 2")

    await in_browser(web, scenario)


async def test_a_429_shows_its_countdown(web: Web) -> None:
    await web.chat.accounts.create_person("ann", PASSWORD, tier="tiny")  # 1 request/min

    def scenario(context: BrowserContext, base: str) -> None:
        page = context.new_page()
        sign_in(page, base)
        send(page, "Hi")
        expect(page.locator("#thread .message")).to_have_count(2)
        expect(page.locator("#stop")).to_be_hidden(timeout=REPLY_TIMEOUT_MS)
        send(page, "Hi again")
        error = page.locator('#thread .error[data-kind="rate_limited"]')
        expect(error).to_be_visible()
        first = int(error.locator(".countdown").inner_text())
        assert 0 < first <= 60
        expect(error.locator(".countdown")).not_to_have_text(str(first))  # it counts down

    await in_browser(web, scenario)


async def test_hostile_replies_are_inert(web: Web) -> None:
    user = await web.chat.accounts.create_person("ann", PASSWORD)
    store = web.chat.store
    conversation = store.create_conversation(user.id, title="<img src=x onerror=alert(1)>")
    store.append_message(user.id, conversation.id, role=Role.USER, content="<b>hi</b>")
    store.append_message(
        user.id, conversation.id, role=Role.ASSISTANT, status=MessageStatus.COMPLETE,
        content=("<script>document.title='pwned'</script>\n\n<img src=x onerror="
                 "\"document.title='pwned'\">\n\n[click](javascript:document.title='pwned')"
                 "\n\n```python\nprint('ok')\n```"))

    def scenario(context: BrowserContext, base: str) -> None:
        page = context.new_page()
        page.on("dialog", lambda dialog: (_ for _ in ()).throw(AssertionError(dialog.message)))
        sign_in(page, base)
        item = page.locator(f'#conversations li[data-conversation-id="{conversation.id}"]')
        expect(item).to_contain_text("<img src=x onerror=alert(1)>")
        item.click()
        reply = page.locator('#thread .message[data-role="assistant"] .content')
        expect(reply.locator("pre code")).to_contain_text("print('ok')")
        assert reply.locator("script").count() == 0
        assert reply.locator("img[onerror]").count() == 0
        for href in reply.locator("a").evaluate_all("links => links.map(a => a.href)"):
            assert not href.startswith("javascript:"), href
        user_text = page.locator('#thread .message[data-role="user"] .content')
        expect(user_text).to_have_text("<b>hi</b>")
        if reply.locator("a").count():
            reply.locator("a").first.click(force=True)
        assert page.title() != "pwned"

    await in_browser(web, scenario)


async def test_settings_make_a_key_that_works_show_usage_and_revoke_it(
        web: Web, tmp_path: Path) -> None:
    await web.chat.accounts.create_person("ann", PASSWORD)
    folder = shots(tmp_path)

    def scenario(context: BrowserContext, base: str) -> None:
        page = context.new_page()
        sign_in(page, base)
        send(page, "Hi")
        expect(page.locator('#thread .message[data-role="assistant"] .actions')).to_be_visible()
        page.click("#open-settings")
        expect(page.locator("#usage")).to_contain_text("tokens in 1 requests")
        expect(page.locator("#api-keys")).to_contain_text("No keys yet.")
        page.click("#create-key")
        expect(page.locator("#new-key")).to_be_visible()
        key = page.input_value("#new-key-value")
        expect(page.locator("#api-keys li[data-key-id]")).to_have_count(1)
        page.locator("#settings").screenshot(path=str(folder / "settings.png"))
        # The key is a real one: a program holding it reaches the same account.
        answer = context.request.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert answer.status == 200 and answer.json()["name"] == "ann"
        page.click("#api-keys button.revoke-key")
        expect(page.locator("#api-keys li.revoked")).to_have_count(1)
        answer = context.request.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert answer.status == 401

    await in_browser(web, scenario)


async def test_escape_stops_a_reply_at_phone_width(
        chat_model: LoadedModel, tmp_path: Path) -> None:
    gate, entered = threading.Event(), threading.Event()
    folder = shots(tmp_path)
    async with gated_server(chat_model, tmp_path, AdmissionLimits(), gate, entered) as web:
        await web.chat.accounts.create_person("ann", PASSWORD)

        def scenario(context: BrowserContext, base: str) -> None:
            page = context.new_page()
            page.set_viewport_size({"width": 390, "height": 844})
            sign_in(page, base)
            expect(page.locator("#sidebar")).not_to_be_in_viewport()  # tucked away
            stop_a_held_reply(page, gate, entered, lambda: page.keyboard.press("Escape"))
            page.screenshot(path=str(folder / "phone.png"))
            page.click("#toggle-sidebar")
            expect(page.locator("#conversations li[data-conversation-id]")).to_be_in_viewport()

        await in_browser(web, scenario)

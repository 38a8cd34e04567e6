"""A share link in a real headless Chromium: the owner makes it from the chat page's
Share dialog, a browser with no cookies at all opens it as a read-only page, and after
the owner revokes it the same address says the link is gone."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import BrowserContext, expect

from tests.web.browser import shots
from tests.web.conftest import Web
from tests.web.test_chat_page import PASSWORD, in_browser, send, sign_in


async def test_share_open_without_cookies_then_revoke(web: Web, tmp_path: Path) -> None:
    await web.chat.accounts.create_person("ann", PASSWORD)
    folder = shots(tmp_path)

    def scenario(context: BrowserContext, base: str) -> None:
        page = context.new_page()
        sign_in(page, base)
        expect(page.locator("#open-share")).to_be_hidden()  # nothing to share yet
        send(page, "Write `print(1)` as a Python code block.")
        expect(page.locator('#thread .message[data-role="assistant"] .actions')).to_be_visible()
        page.click("#open-share")
        expect(page.locator("#share-state")).to_contain_text("Not shared")
        page.click("#share-create")
        expect(page.locator("#share-state")).to_contain_text("Anyone with this link")
        url = page.input_value("#share-url")
        assert url.startswith(f"{base}/v1/shared/")
        page.locator("#share").screenshot(path=str(folder / "share.png"))

        assert context.browser is not None
        stranger = context.browser.new_context(viewport={"width": 1000, "height": 800})
        assert stranger.cookies() == []
        view = stranger.new_page()
        view.goto(url)
        messages = view.locator("#shared-messages .message")
        expect(messages).to_have_count(2)
        expect(messages.first).to_have_attribute("data-role", "user")
        expect(messages.first).to_contain_text("print(1)")
        assert view.locator("#composer, #prompt, button.edit").count() == 0  # read-only
        view.screenshot(path=str(folder / "shared.png"))

        page.click("#share-revoke")
        expect(page.locator("#share-state")).to_contain_text("Not shared")
        view.reload()
        expect(view.locator("#shared-title")).to_have_text("This link is gone")
        expect(view.locator("#shared-messages .message")).to_have_count(0)
        stranger.close()

    await in_browser(web, scenario)

"""The chat page's sidebar (``chat/static/sidebar.js``) in a real headless Chromium:
conversations page in as the list scrolls, search finds contents with a snippet, and
rename, archive, unarchive and delete (after its confirmation) reach the server."""

from __future__ import annotations

import re

from playwright.sync_api import BrowserContext, expect

from chorusline.store import Role
from tests.web.conftest import Web
from tests.web.test_chat_page import PASSWORD, in_browser, sign_in

CHATS = 45  # more than two pages of twenty
ARCHIVED = re.compile(r"\barchived\b")


async def test_scroll_search_rename_archive_and_delete(web: Web) -> None:
    user = await web.chat.accounts.create_person("ann", PASSWORD)
    store = web.chat.store
    ids = [store.create_conversation(user.id, title=f"Chat {i:02d}").id for i in range(CHATS)]
    store.append_message(user.id, ids[3], role=Role.USER,
                         content="Tell me about the purple elephant in the garden.")
    item = '#conversations li[data-conversation-id="{}"]'.format

    def scenario(context: BrowserContext, base: str) -> None:
        page = context.new_page()
        sign_in(page, base)
        rows = page.locator("#conversations li[data-conversation-id]")
        expect(rows.nth(19)).to_be_attached()  # pages of twenty, newest first (the API's)
        # Scrolling to the end loads the next page, and the one after, until none is left.
        while rows.count() < CHATS and page.locator("#conversations-more").count():
            page.locator("#conversations-more").scroll_into_view_if_needed()
            rows.nth(min(CHATS, rows.count() + 1) - 1).wait_for()
        expect(rows).to_have_count(CHATS)
        expect(page.locator("#conversations-more")).to_have_count(0)  # the end

        page.fill("#search", "purple elephant")
        hit = page.locator(f'#search-results li[data-conversation-id="{ids[3]}"]')
        expect(hit.locator(".snippet")).to_contain_text("purple elephant")
        expect(page.locator("#conversations")).to_be_hidden()
        page.press("#search", "Escape")
        expect(page.locator("#conversations")).to_be_visible()

        page.locator(item(ids[-1])).hover()
        page.locator(item(ids[-1])).locator("button.rename").click()
        page.fill(f'{item(ids[-1])} input.rename-input', "Renamed by hand")
        page.press(f'{item(ids[-1])} input.rename-input', "Enter")
        expect(page.locator(item(ids[-1])).locator(".title")).to_have_text("Renamed by hand")

        page.locator(item(ids[-2])).hover()
        page.locator(item(ids[-2])).locator("button.archive").click()
        expect(page.locator(item(ids[-2]))).to_have_count(0)
        page.check("#show-archived")
        expect(page.locator(item(ids[-2]))).to_have_class(ARCHIVED)
        page.locator(item(ids[-2])).hover()
        page.locator(item(ids[-2])).locator("button.unarchive").click()
        expect(page.locator(item(ids[-2]))).not_to_have_class(ARCHIVED)

        page.locator(item(ids[-3])).hover()
        page.locator(item(ids[-3])).locator("button.delete").click()
        expect(page.locator("#confirm-delete")).to_contain_text(f"Chat {CHATS - 3:02d}")
        page.click("#confirm-delete-no")
        expect(page.locator(item(ids[-3]))).to_have_count(1)  # cancelled: still there
        page.locator(item(ids[-3])).hover()
        page.locator(item(ids[-3])).locator("button.delete").click()
        page.click("#confirm-delete-yes")
        expect(page.locator(item(ids[-3]))).to_have_count(0)

    await in_browser(web, scenario)
    left = {c.id: c for c in store.list_conversations(user.id, archived=None, limit=100).items}
    assert ids[-3] not in left and len(left) == CHATS - 1
    assert left[ids[-1]].title == "Renamed by hand" and not left[ids[-2]].archived

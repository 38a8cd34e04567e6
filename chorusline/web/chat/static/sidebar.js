// The conversation list: newest first, twenty at a time (more as the end scrolls into
// view), rename / archive / delete on each, and a debounced search that replaces the list
// while there is a query.

import * as api from "./api.js";
import {debounce, h, setText} from "/common/static/dom.js";

const PAGE = 20;

/**
 * handlers: onSelect(id), onDeleted(id), onError(error)
 * elements: list (ul#conversations), search (input#search), results (ul#search-results),
 *           showArchived (input#show-archived), confirm (dialog#confirm-delete)
 */
export function createSidebar(elements, handlers) {
  const {list, search, results, showArchived, confirm} = elements;
  let activeId = null;
  let cursor = null;
  let loading = false;
  let generation = 0; // a refresh started later wins over an older page still arriving

  const more = h("li", {id: "conversations-more", class: "more"},
    h("button", {type: "button", class: "link", onclick: () => loadMore()}, "Load more"));

  // Infinite scroll: when the sentinel at the end of the list becomes visible, fetch the
  // next page. The button inside it is the keyboard (and no-IntersectionObserver) route.
  const observer = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) loadMore();
    }, {root: list.closest(".conversation-scroll") || null, rootMargin: "120px"})
    : null;

  function titleOf(conversation) {
    return conversation.title && conversation.title.trim() ? conversation.title : "New chat";
  }

  function itemEl(conversation) {
    const title = h("span", {class: "title"}, titleOf(conversation));
    const open = h("button", {type: "button", class: "open", title: titleOf(conversation),
      onclick: () => handlers.onSelect(conversation.id)}, title);
    const li = h("li", {dataset: {conversationId: conversation.id},
      class: [conversation.id === activeId ? "active" : "", conversation.archived ? "archived" : ""]
        .filter(Boolean).join(" ") || null});
    if (conversation.id === activeId) open.setAttribute("aria-current", "page");
    const tools = h("span", {class: "item-tools"},
      h("button", {type: "button", class: "rename icon", "aria-label": "Rename",
        title: "Rename", onclick: () => rename(li, conversation, title)}, "✎"),
      conversation.archived
        ? h("button", {type: "button", class: "unarchive icon", "aria-label": "Unarchive",
          title: "Unarchive", onclick: () => setArchived(conversation, false)}, "⤒")
        : h("button", {type: "button", class: "archive icon", "aria-label": "Archive",
          title: "Archive", onclick: () => setArchived(conversation, true)}, "⤓"),
      h("button", {type: "button", class: "delete icon", "aria-label": "Delete",
        title: "Delete", onclick: () => askDelete(conversation)}, "✕"));
    li.append(open, tools);
    return li;
  }

  /** Inline rename: an input over the title; Enter saves, Escape or blur-without-change cancels. */
  function rename(li, conversation, title) {
    if (li.querySelector("input.rename-input")) return;
    const input = h("input", {type: "text", class: "rename-input", "aria-label": "New title",
      maxlength: 200});
    input.value = conversation.title || "";
    const open = li.querySelector("button.open");
    open.hidden = true;
    li.prepend(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const text = input.value.trim();
      input.remove();
      open.hidden = false;
      if (!save || !text || text === conversation.title) return;
      try {
        const updated = await api.patch(`/v1/conversations/${api.seg(conversation.id)}`, {title: text});
        conversation.title = updated && updated.title !== undefined ? updated.title : text;
        setText(title, titleOf(conversation));
        open.title = titleOf(conversation);
      } catch (error) {
        handlers.onError(error);
      }
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
  }

  async function setArchived(conversation, archived) {
    try {
      await api.patch(`/v1/conversations/${api.seg(conversation.id)}`, {archived});
      await refresh();
    } catch (error) {
      handlers.onError(error);
    }
  }

  /** Delete asks first, in a <dialog>: a conversation cannot be brought back. */
  function askDelete(conversation) {
    setText(confirm.querySelector(".confirm-title"), titleOf(conversation));
    confirm.returnValue = "";
    confirm.onclose = async () => {
      if (confirm.returnValue !== "yes") return;
      try {
        await api.del(`/v1/conversations/${api.seg(conversation.id)}`);
        list.querySelector(`li[data-conversation-id="${CSS.escape(conversation.id)}"]`)?.remove();
        handlers.onDeleted(conversation.id);
      } catch (error) {
        handlers.onError(error);
      }
    };
    confirm.showModal();
  }

  function archivedParam() {
    return showArchived.checked ? "all" : "false";
  }

  async function fetchPage(after) {
    return api.get(api.withQuery("/v1/conversations",
      {limit: PAGE, cursor: after, archived: archivedParam()}));
  }

  function placeSentinel() {
    if (observer) observer.unobserve(more);
    if (cursor) {
      list.append(more); // always last
      if (observer) observer.observe(more);
    } else more.remove();
  }

  /** Reload the list from the first page. */
  async function refresh() {
    const mine = ++generation;
    loading = true;
    try {
      const page = await fetchPage(null);
      if (mine !== generation) return;
      cursor = page.next_cursor || null;
      const items = page.data.map(itemEl);
      if (items.length === 0) items.push(h("li", {class: "empty muted"}, "No conversations yet"));
      list.replaceChildren(...items);
      placeSentinel();
    } catch (error) {
      if (mine === generation) handlers.onError(error);
    } finally {
      if (mine === generation) loading = false;
    }
  }

  async function loadMore() {
    if (loading || !cursor) return;
    const mine = generation;
    loading = true;
    try {
      const page = await fetchPage(cursor);
      if (mine !== generation) return;
      cursor = page.next_cursor || null;
      more.remove();
      const seen = new Set([...list.querySelectorAll("li[data-conversation-id]")]
        .map((li) => li.dataset.conversationId));
      list.append(...page.data.filter((c) => !seen.has(c.id)).map(itemEl));
      placeSentinel();
    } catch (error) {
      handlers.onError(error);
    } finally {
      if (mine === generation) loading = false;
    }
  }

  function setActive(id) {
    activeId = id;
    for (const li of list.querySelectorAll("li[data-conversation-id]")) {
      const on = li.dataset.conversationId === id;
      li.classList.toggle("active", on);
      const open = li.querySelector("button.open");
      if (on) open.setAttribute("aria-current", "page");
      else open.removeAttribute("aria-current");
    }
  }

  // --- search ------------------------------------------------------------------------
  let searchGeneration = 0;

  async function runSearch() {
    const q = search.value.trim();
    const mine = ++searchGeneration;
    if (!q) {
      results.hidden = true;
      results.replaceChildren();
      list.hidden = false;
      return;
    }
    try {
      const found = await api.get(api.withQuery("/v1/conversations/search", {q}));
      if (mine !== searchGeneration) return;
      const items = found.data.map((hit) => {
        const c = hit.conversation;
        return h("li", {class: "search-result", dataset: {conversationId: c.id}},
          h("button", {type: "button", class: "open", onclick: () => handlers.onSelect(c.id)},
            h("span", {class: "title"}, titleOf(c)),
            hit.snippet ? h("span", {class: "snippet"}, hit.snippet) : null));
      });
      if (items.length === 0) items.push(h("li", {class: "empty muted"}, "No matches"));
      results.replaceChildren(...items);
      results.hidden = false;
      list.hidden = true;
    } catch (error) {
      if (mine === searchGeneration) handlers.onError(error);
    }
  }

  search.addEventListener("input", debounce(runSearch, 250));
  search.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      search.value = "";
      runSearch();
    }
  });
  showArchived.addEventListener("change", () => refresh());
  // Plain buttons rather than <form method="dialog">: the page's CSP has form-action 'none'.
  confirm.querySelector("#confirm-delete-yes").addEventListener("click", () => confirm.close("yes"));
  confirm.querySelector("#confirm-delete-no").addEventListener("click", () => confirm.close(""));

  return {refresh, setActive};
}

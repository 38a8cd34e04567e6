// The thread: one div.message per message of the active branch, the streaming reply, and
// inline errors. It renders and reports clicks; main.js decides what they do (API calls),
// so this module never talks to the server.

import {copyText, flashLabel, h, setText} from "/common/static/dom.js";
import {enhanceCode, renderInto} from "./markdown.js";

const STOPPED = "stopped (incomplete)";
const BLOCKED = "blocked by moderation";

/**
 * Siblings by parent: messages that answer (or edit) the same point, oldest first.
 * Ordered by `seq` (the conversation's own gap-free counter): `created_at` is whole
 * seconds, so an edit made in the same second as its original would tie, and the ids
 * are random, so a tie-break on them put the new branch first half the time.
 */
function siblingsByParent(tree) {
  const groups = new Map();
  for (const message of tree) {
    const key = message.parent_message_id ?? "";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(message);
  }
  for (const list of groups.values()) {
    list.sort((a, b) => a.seq - b.seq);
  }
  return groups;
}

/** The status mark a message deserves, or "" for none. */
function statusOf(message) {
  if (message.status === "blocked" || message.finish_reason === "content_filter") return BLOCKED;
  if (message.status === "incomplete" || message.finish_reason === "abort") return STOPPED;
  return "";
}

/**
 * handlers: onSwitch(siblingId), onEdit(message, newText), onRegenerate(message),
 *           onFeedback(message, rating|null)
 */
export function createThread(root, handlers) {
  let busy = false; // while a reply streams, edit/regenerate/switch would race it
  const feedback = new Map(); // message id -> "up" | "down"

  function atBottom() {
    return root.scrollHeight - root.scrollTop - root.clientHeight < 80;
  }

  /** Keep following the end, unless the reader scrolled up to read. */
  function follow(wasAtBottom = true) {
    if (wasAtBottom) root.scrollTop = root.scrollHeight;
  }

  function welcome() {
    return h("div", {class: "welcome"},
      h("h2", null, "How can I help?"),
      h("p", {class: "muted"}, "Type a message below to start a new conversation."));
  }

  function statusEl(text) {
    return h("p", {class: text === BLOCKED ? "status blocked" : "status stopped"}, text);
  }

  function siblingSwitch(message, siblings) {
    const at = siblings.findIndex((s) => s.id === message.id);
    const go = (delta) => {
      const target = siblings[at + delta];
      if (target && !busy) handlers.onSwitch(target.id);
    };
    return h("div", {class: "siblings", role: "group", "aria-label": "Versions"},
      h("button", {type: "button", class: "prev icon", "aria-label": "Previous version",
        disabled: at <= 0, onclick: () => go(-1)}, "‹"),
      h("span", {class: "position"}, `${at + 1} / ${siblings.length}`),
      h("button", {type: "button", class: "next icon", "aria-label": "Next version",
        disabled: at >= siblings.length - 1, onclick: () => go(1)}, "›"));
  }

  /** Inline editor in place of a user message; save sends an edit turn. */
  function startEdit(el, message) {
    if (busy || el.querySelector(".editor")) return;
    const content = el.querySelector(".content");
    const area = h("textarea", {class: "edit-text", rows: 3, "aria-label": "Edit your message"});
    area.value = message.content;
    const close = () => {
      editor.remove();
      content.hidden = false;
      el.classList.remove("editing");
    };
    const save = () => {
      const text = area.value.trim();
      if (!text) return;
      close();
      handlers.onEdit(message, text);
    };
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
      else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        save();
      }
    });
    const editor = h("div", {class: "editor"}, area,
      h("div", {class: "editor-actions"},
        h("button", {type: "button", class: "cancel", onclick: close}, "Cancel"),
        h("button", {type: "button", class: "save primary", onclick: save}, "Save & submit")));
    content.hidden = true;
    el.classList.add("editing");
    content.after(editor);
    area.focus();
  }

  function feedbackButtons(message) {
    const rated = feedback.get(message.id) || null;
    const make = (rating, label, glyph) => h("button", {
      type: "button", class: `feedback feedback-${rating} icon`, "aria-label": label,
      "aria-pressed": rated === rating ? "true" : "false",
      onclick: (event) => {
        const now = feedback.get(message.id) === rating ? null : rating;
        if (now) feedback.set(message.id, now);
        else feedback.delete(message.id);
        for (const b of event.currentTarget.parentElement.querySelectorAll(".feedback")) {
          b.setAttribute("aria-pressed", b.classList.contains(`feedback-${now}`) ? "true" : "false");
        }
        handlers.onFeedback(message, now);
      },
    }, glyph);
    return [make("up", "Good reply", "Good"), make("down", "Bad reply", "Bad")];
  }

  /** One stored message. */
  function messageEl(message, siblings) {
    const role = message.role;
    const content = h("div", {class: "content"});
    if (role === "assistant") renderInto(content, message.content);
    else content.textContent = message.content;
    const mark = statusOf(message);
    const el = h("div", {class: `message ${role}`, dataset: {messageId: message.id, role}});
    const actions = h("div", {class: "actions"});
    if (siblings && siblings.length > 1) actions.append(siblingSwitch(message, siblings));
    if (role === "user") {
      actions.append(h("button", {type: "button", class: "edit", "aria-label": "Edit message",
        onclick: () => startEdit(el, message)}, "Edit"));
    } else if (role === "assistant") {
      const copy = h("button", {type: "button", class: "copy", "aria-label": "Copy reply",
        onclick: async () => {
          try {
            await copyText(message.content);
            flashLabel(copy, "Copied");
          } catch {
            flashLabel(copy, "Copy failed");
          }
        }}, "Copy");
      actions.append(copy,
        h("button", {type: "button", class: "regenerate", "aria-label": "Regenerate reply",
          onclick: () => { if (!busy) handlers.onRegenerate(message); }}, "Regenerate"),
        ...feedbackButtons(message));
    }
    el.append(h("div", {class: "bubble"}, content, mark ? statusEl(mark) : null), actions);
    if (mark === BLOCKED) el.classList.add("blocked");
    return el;
  }

  /** Show the active branch `messages`; `tree` (every branch) gives the sibling switches. */
  function render(messages, tree = messages, ratings = null) {
    if (ratings) {
      feedback.clear();
      for (const r of ratings) feedback.set(r.message_id, r.rating);
    }
    const groups = siblingsByParent(tree);
    const shown = messages.filter((m) => m.role === "user" || m.role === "assistant");
    if (shown.length === 0) {
      root.replaceChildren(welcome());
      return;
    }
    root.replaceChildren(...shown.map((m) => messageEl(m, groups.get(m.parent_message_id ?? ""))));
    follow(true);
  }

  function clear() {
    root.replaceChildren(welcome());
  }

  /** Remove the message with `id` and everything after it (an edit or regenerate). */
  function truncateFrom(id) {
    const el = root.querySelector(`.message[data-message-id="${CSS.escape(id)}"]`);
    if (!el) return;
    while (el.nextSibling) el.nextSibling.remove();
    el.remove();
  }

  function removeTransient() {
    for (const el of root.querySelectorAll(".welcome, .error")) el.remove();
  }

  /** The user's message before the server has stored it (no id yet). */
  function addPendingUser(text) {
    removeTransient();
    const el = h("div", {class: "message user pending", dataset: {messageId: "", role: "user"}},
      h("div", {class: "bubble"}, h("div", {class: "content"}, text)));
    root.append(el);
    follow(true);
  }

  /**
   * The reply as it streams. Markdown is re-rendered at most once per animation frame
   * (tokens arrive faster than the screen repaints) and highlighted once at the end.
   */
  function startAssistant() {
    removeTransient();
    const content = h("div", {class: "content"});
    const typing = h("span", {class: "typing", "aria-hidden": "true"});
    content.append(typing);
    const bubble = h("div", {class: "bubble"}, content);
    const el = h("div", {class: "message assistant streaming", dataset: {messageId: "", role: "assistant"},
      "aria-busy": "true"}, bubble);
    root.append(el);
    follow(true);
    let text = "";
    let frame = 0;
    const paint = () => {
      frame = 0;
      const wasAtBottom = atBottom();
      renderInto(content, text, {highlight: false});
      follow(wasAtBottom);
    };
    return {
      element: el,
      get text() { return text; },
      append(piece) {
        text += piece;
        if (!frame) frame = requestAnimationFrame(paint);
      },
      /** The stream ended; mark it stopped or blocked when it was. */
      finish(finishReason) {
        if (frame) cancelAnimationFrame(frame);
        frame = 0;
        const wasAtBottom = atBottom();
        if (text) {
          renderInto(content, text);
        } else typing.remove();
        el.classList.remove("streaming");
        el.removeAttribute("aria-busy");
        const mark = statusOf({finish_reason: finishReason});
        if (mark) bubble.append(statusEl(mark));
        follow(wasAtBottom);
      },
    };
  }

  /**
   * An inline error. kind: rate_limited (with a live countdown from `retryAfter` seconds),
   * overloaded, failed.
   */
  function showError({kind, message, retryAfter = null}) {
    let el;
    if (kind === "rate_limited") {
      let left = Math.max(0, Math.ceil(retryAfter ?? 0));
      const countdown = h("span", {class: "countdown"}, String(left));
      const text = h("span", null, "Rate limited: try again in ", countdown, " s");
      el = h("div", {class: "error", dataset: {kind}, role: "alert"}, text);
      const timer = setInterval(() => {
        left -= 1;
        if (!el.isConnected) {
          clearInterval(timer);
          return;
        }
        if (left <= 0) {
          clearInterval(timer);
          setText(countdown, "0");
          text.replaceChildren("Rate limited: you can try again now (", countdown, " s)");
        } else setText(countdown, String(left));
      }, 1000);
    } else if (kind === "overloaded") {
      el = h("div", {class: "error", dataset: {kind}, role: "alert"},
        "The server is busy (overloaded); try again shortly");
    } else {
      el = h("div", {class: "error", dataset: {kind: "failed"}, role: "alert"},
        message || "Something went wrong");
    }
    root.querySelector(".welcome")?.remove();
    root.append(el);
    follow(true);
    return el;
  }

  function setBusy(value) {
    busy = value;
    root.classList.toggle("busy", value);
  }

  return {render, clear, truncateFrom, addPendingUser, startAssistant, showError, setBusy,
    enhanceCode};
}

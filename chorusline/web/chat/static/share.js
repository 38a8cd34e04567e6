// The share <dialog>: make a link to a snapshot of the open conversation, copy it, see
// when it was made, refresh it (a new snapshot under a new link: the old link stops
// working, so nobody holding it reads a stale copy) and revoke it.

import * as api from "./api.js";
import {copyText, flashLabel, setText} from "/common/static/dom.js";

/**
 * elements: open, dialog, state, link, url, copy, create, revoke, close, error
 * hooks: conversationId() -> the open conversation's id, or null
 */
export function createShare(el, hooks) {
  let current = null; // the link shown: {url, created_at} or null
  const path = () => `/v1/conversations/${api.seg(hooks.conversationId())}/share`;

  function show(link) {
    current = link;
    el.link.hidden = !link;
    el.revoke.hidden = !link;
    el.url.value = link ? link.url : "";
    setText(el.create, link ? "Update link" : "Create link");
    setText(el.state, link
      ? `Anyone with this link sees the conversation as it was on ${
        new Date(link.created_at * 1000).toLocaleString()}. Updating makes a new link to it as it is now; the old link stops working.`
      : "Not shared. A link shows a read-only snapshot of this conversation as it is when you make it.");
  }

  /** Run `action`, showing its error in the dialog; keeps the buttons still meanwhile. */
  async function busy(action) {
    setText(el.error, "");
    el.create.disabled = el.revoke.disabled = true;
    try {
      await action();
    } catch (error) {
      setText(el.error, error.message);
    } finally {
      el.create.disabled = el.revoke.disabled = false;
    }
  }

  el.open.addEventListener("click", () => {
    if (!hooks.conversationId()) return;
    show(null);
    setText(el.state, "…");
    el.dialog.showModal();
    busy(async () => {
      try {
        show(await api.get(path()));
      } catch (error) {
        if (error.status !== 404) throw error;
        show(null); // not shared yet
      }
    });
  });
  el.create.addEventListener("click", () => busy(async () => show(await api.post(path(), {}))));
  el.revoke.addEventListener("click", () => busy(async () => {
    await api.del(path());
    show(null);
  }));
  el.copy.addEventListener("click", async () => {
    if (!current) return;
    try {
      await copyText(current.url);
      flashLabel(el.copy, "Copied");
    } catch {
      el.url.select();
      flashLabel(el.copy, "Press Ctrl+C");
    }
  });
  el.close.addEventListener("click", () => el.dialog.close());

  return {
    /** The Share button shows only while a stored conversation is open. */
    setAvailable(available) {
      el.open.hidden = !available;
    },
  };
}

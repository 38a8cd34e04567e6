// The API keys and usage part of the settings: list, create (the secret shown once, to
// copy) and revoke the user's keys, and this month's tokens from the usage events every
// turn records. Creating and revoking need this page's sign-in; a key cannot do either.

import * as api from "./api.js";
import {copyText, flashLabel, h, replace, setText} from "/common/static/dom.js";

const number = (n) => Number(n).toLocaleString();
const day = (seconds) => new Date(seconds * 1000).toLocaleDateString();

/** elements: list, create, fresh, freshValue, freshCopy, usage, error */
export function createKeys(el) {
  function keyEl(key) {
    const state = key.active ? `created ${day(key.created_at)}` : `revoked ${day(key.revoked_at)}`;
    const li = h("li", {dataset: {keyId: key.id}, class: key.active ? null : "revoked"},
      h("code", {class: "prefix"}, `${key.prefix}…`),
      h("span", {class: "muted"}, ` ${key.tier} · ${state}`));
    if (key.active) {
      li.append(h("button", {type: "button", class: "revoke-key danger",
        "aria-label": `Revoke key ${key.prefix}`, onclick: () => revoke(key)}, "Revoke"));
    }
    return li;
  }

  async function loadKeys() {
    const keys = (await api.get("/v1/me/api_keys")).data || [];
    if (keys.length === 0) replace(el.list, h("li", {class: "muted empty"}, "No keys yet."));
    else replace(el.list, ...keys.slice().reverse().map(keyEl)); // newest first
  }

  async function loadUsage() {
    const usage = await api.get("/v1/me/usage");
    setText(el.usage, `${number(usage.total_tokens)} tokens in ${number(usage.requests)} `
      + `requests (${number(usage.prompt_tokens)} prompt, ${number(usage.completion_tokens)} `
      + `completion) in ${usage.month}`);
  }

  async function revoke(key) {
    try {
      await api.del(`/v1/me/api_keys/${api.seg(key.id)}`);
      await loadKeys();
    } catch (error) {
      setText(el.error, error.message);
    }
  }

  el.create.addEventListener("click", async () => {
    el.create.disabled = true;
    try {
      const made = await api.post("/v1/me/api_keys", {});
      el.freshValue.value = made.key;
      el.fresh.hidden = false;
      el.freshValue.select();
      await loadKeys();
    } catch (error) {
      setText(el.error, error.message);
    } finally {
      el.create.disabled = false;
    }
  });
  el.freshCopy.addEventListener("click", async () => {
    try {
      await copyText(el.freshValue.value);
      flashLabel(el.freshCopy, "Copied");
    } catch {
      flashLabel(el.freshCopy, "Press Ctrl+C");
    }
  });

  return {
    /** Fresh figures each time the settings open; a key shown once is cleared. */
    async load() {
      el.fresh.hidden = true;
      el.freshValue.value = "";
      await Promise.all([loadKeys(), loadUsage()]);
    },
  };
}

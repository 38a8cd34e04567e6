// The read-only page of a share link: the same URL read as JSON (the server sends this
// page to browsers and JSON to everyone else), shown with the thread's own rendering:
// user text as text, replies through the sanitising Markdown path.

import {$, h, setText} from "/common/static/dom.js";
import {errorFrom} from "/common/static/errors.js";
import {renderInto} from "./markdown.js";

function messageEl(message) {
  const content = h("div", {class: "content"});
  if (message.role === "assistant") renderInto(content, message.content || "");
  else content.textContent = message.content || "";
  return h("div", {class: `message ${message.role}`, dataset: {role: message.role}},
    h("div", {class: "bubble"}, content));
}

async function start() {
  const list = $("#shared-messages");
  let response;
  try {
    response = await fetch(window.location.pathname, {headers: {Accept: "application/json"},
      cache: "no-store", credentials: "omit"});
  } catch {
    list.replaceChildren(h("div", {class: "error", role: "alert"},
      "The server could not be reached."));
    return;
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    setText($("#shared-title"), response.status === 404 ? "This link is gone" : "Not available");
    list.replaceChildren(h("div", {class: "error", dataset: {kind: "gone"}, role: "alert"},
      response.status === 404
        ? "The owner revoked this share link, or it never existed."
        : error.message));
    return;
  }
  const snapshot = await response.json();
  const title = snapshot.title && snapshot.title.trim() ? snapshot.title : "Shared conversation";
  setText($("#shared-title"), title);
  document.title = `${title} · chorusline`;
  if (snapshot.created_at) {
    setText($("#shared-date"), `Shared ${new Date(snapshot.created_at * 1000).toLocaleString()}`);
  }
  const shown = (snapshot.messages || []).filter((m) => m.role === "user" || m.role === "assistant");
  list.replaceChildren(...shown.map(messageEl));
}

start();

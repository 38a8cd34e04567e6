// The chat page: signs in through the session cookie, then wires the sidebar, thread,
// composer and settings together. This module owns the state (which conversation is
// open, whether a reply is streaming) and every call that changes it.

import * as api from "./api.js";
import {$, setText} from "/common/static/dom.js";
import {streamTurn} from "./sse.js";
import {createThread} from "./thread.js";
import {createSidebar} from "./sidebar.js";
import {createComposer} from "./composer.js";
import {createSettings} from "./settings.js";
import {createShare} from "./share.js";

const state = {
  id: null,                  // the open conversation's id, null for a new chat
  conversation: null,        // its last fetched object (system_prompt for the settings)
  tree: [],                  // every message of every branch (for the sibling switches)
  pendingSystemPrompt: null, // set in settings before the new chat exists
  streaming: null,           // {controller, requestId, stopWanted} while a reply streams
};

const convPath = (id) => `/v1/conversations/${api.seg(id)}`;

/** An ApiError or a mid-stream error body, as what thread.showError shows. */
function errorView(error) {
  const code = error.code || null;
  if (error.status === 429 || code === "rate_limit_exceeded") {
    return {kind: "rate_limited", retryAfter: error.retryAfter ?? error.retry_after ?? 0};
  }
  if ((error.status === 503 && code !== "service_unavailable") || code === "overloaded") {
    return {kind: "overloaded"};
  }
  return {kind: "failed", message: error.message || "The request failed"};
}

// --- the conversation in the URL (#c=<id>), so a reload keeps the place ----------------
function hashId() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  return params.get("c");
}

function setHash(id) {
  const target = id ? `#c=${encodeURIComponent(id)}` : window.location.pathname + window.location.search;
  if ((id && window.location.hash !== target) || (!id && window.location.hash)) {
    history.pushState(null, "", target); // pushState fires no hashchange: no double load
  }
}

// --- parts ------------------------------------------------------------------------------
const threadEl = $("#thread");
const thread = createThread(threadEl, {
  onSwitch: switchBranch,
  onEdit: (message, text) => runTurn({content: text, edit_message_id: message.id},
    {userText: text, truncateFrom: message.id}),
  onRegenerate: (message) => runTurn({regenerate_message_id: message.id},
    {truncateFrom: message.id}),
  onFeedback: rate,
});

const sidebar = createSidebar({
  list: $("#conversations"),
  search: $("#search"),
  results: $("#search-results"),
  showArchived: $("#show-archived"),
  confirm: $("#confirm-delete"),
}, {
  onSelect: (id) => {
    closeSidebarOnNarrow();
    select(id);
  },
  onDeleted: (id) => {
    if (id === state.id) newChat();
  },
  onError: (error) => thread.showError(errorView(error)),
});

const composer = createComposer({
  form: $("#composer"), prompt: $("#prompt"), send: $("#send"), stop: $("#stop"),
  status: $("#stream-status"),
}, {onSend: send, onStop: stop});

const settings = createSettings({
  open: $("#open-settings"), dialog: $("#settings"),
  customInstructions: $("#custom-instructions"), systemPrompt: $("#system-prompt"),
  model: $("#model"), temperature: $("#temperature"), temperatureValue: $("#temperature-value"),
  save: $("#save-settings"), cancel: $("#cancel-settings"), error: $("#settings-error"),
  keys: {list: $("#api-keys"), create: $("#create-key"), fresh: $("#new-key"),
    freshValue: $("#new-key-value"), freshCopy: $("#new-key-copy"), usage: $("#usage"),
    error: $("#settings-error")},
}, {
  conversation: () => state.conversation,
  pendingSystemPrompt: () => state.pendingSystemPrompt,
  onSystemPrompt: async (text) => {
    if (!state.id) {
      state.pendingSystemPrompt = text; // used when the first send creates the chat
      return;
    }
    if ((state.conversation?.system_prompt || null) === text) return;
    state.conversation = await api.patch(convPath(state.id), {system_prompt: text});
  },
});

const share = createShare({
  open: $("#open-share"), dialog: $("#share"), state: $("#share-state"), link: $("#share-link"),
  url: $("#share-url"), copy: $("#share-copy"), create: $("#share-create"),
  revoke: $("#share-revoke"), close: $("#share-close"), error: $("#share-error"),
}, {conversationId: () => state.id});

// --- conversations --------------------------------------------------------------------
/** Fetch the open conversation (active branch + every branch) and show it. */
async function loadThread() {
  const id = state.id;
  const [conversation, tree, ratings] = await Promise.all([
    api.get(convPath(id)),
    api.get(api.withQuery(`${convPath(id)}/messages`, {tree: "true"})),
    api.get(`${convPath(id)}/feedback`).catch(() => null), // ratings are a nicety
  ]);
  if (state.id !== id) return; // another conversation was opened meanwhile
  state.conversation = conversation;
  state.tree = tree.data || [];
  thread.render(conversation.messages || [], state.tree, ratings ? ratings.data : null);
  document.title = `${conversation.title || "New chat"} · chorusline`;
}

async function select(id) {
  if (id === state.id) return;
  if (state.streaming) state.streaming.controller.abort(); // stop reading; not our thread now
  state.id = id;
  state.conversation = null;
  state.pendingSystemPrompt = null;
  setHash(id);
  sidebar.setActive(id);
  share.setAvailable(true);
  try {
    await loadThread();
  } catch (error) {
    if (state.id !== id) return;
    if (error.status === 404) {
      newChat();
      thread.showError({kind: "failed", message: "That conversation no longer exists."});
    } else thread.showError(errorView(error));
  }
}

function newChat() {
  if (state.streaming) state.streaming.controller.abort();
  state.id = null;
  state.conversation = null;
  state.tree = [];
  setHash(null);
  sidebar.setActive(null);
  share.setAvailable(false);
  thread.clear();
  document.title = "chorusline";
  composer.focus();
}

async function switchBranch(messageId) {
  try {
    const conversation = await api.post(`${convPath(state.id)}/active_branch`, {message_id: messageId});
    state.conversation = conversation;
    thread.render(conversation.messages || [], state.tree);
  } catch (error) {
    thread.showError(errorView(error));
  }
}

async function rate(message, rating) {
  const path = `${convPath(state.id)}/messages/${api.seg(message.id)}/feedback`;
  try {
    if (rating) await api.put(path, {rating});
    else await api.del(path);
  } catch (error) {
    thread.showError(errorView(error));
  }
}

// --- turns ------------------------------------------------------------------------------
/** The composer's send: a new chat is created on its first message. */
async function send(text) {
  if (state.streaming) return false;
  let fresh = false;
  if (!state.id) {
    try {
      const body = state.pendingSystemPrompt ? {system_prompt: state.pendingSystemPrompt} : {};
      const conversation = await api.post("/v1/conversations", body);
      state.id = conversation.id;
      state.conversation = conversation;
      state.pendingSystemPrompt = null;
      setHash(conversation.id);
      share.setAvailable(true);
      fresh = true;
    } catch (error) {
      thread.showError(errorView(error));
      return false;
    }
  }
  return runTurn({content: text}, {userText: text, fresh});
}

/**
 * Stream one turn into the thread, then reload the thread from the server so ids,
 * branches and statuses are the stored ones. Returns false when the server refused the
 * turn before it began (so the composer gives the text back).
 */
async function runTurn(body, {userText = null, truncateFrom = null, fresh = false}) {
  if (state.streaming || !state.id) return false;
  const id = state.id;
  const turn = {controller: new AbortController(), requestId: null, stopWanted: false};
  state.streaming = turn;
  thread.setBusy(true);
  composer.setStreaming(true);
  if (truncateFrom) thread.truncateFrom(truncateFrom);
  if (userText !== null) thread.addPendingUser(userText);
  const reply = thread.startAssistant();

  let outcome = null;
  let refused = null;
  try {
    outcome = await streamTurn(`${convPath(id)}/messages`,
      {...body, stream: true, ...settings.turnOptions()}, {
        signal: turn.controller.signal,
        onDelta: (text) => reply.append(text),
        onRequestId: (requestId) => {
          turn.requestId = requestId;
          if (turn.stopWanted) requestStop(requestId); // Stop was pressed before the id came
        },
      });
  } catch (error) {
    if (!(error && error.name === "AbortError")) refused = error;
  } finally {
    if (state.streaming === turn) state.streaming = null;
    thread.setBusy(false);
    composer.setStreaming(false);
  }
  if (state.id !== id) return true; // the reader moved on; the sidebar will catch up

  if (refused) {
    reply.element.remove();
    try {
      await loadThread();
    } catch {
      // keep what is shown
    }
    thread.showError(errorView(refused));
    if (fresh) sidebar.refresh();
    return false;
  }
  if (outcome) reply.finish(outcome.finishReason);
  try {
    await loadThread();
  } catch (error) {
    thread.showError(errorView(error));
  }
  if (outcome && outcome.error) thread.showError(errorView(outcome.error));
  sidebar.refresh();
  // The server titles a new chat after its first reply, a moment later: look once more.
  if (fresh) setTimeout(() => sidebar.refresh(), 3000);
  return true;
}

function requestStop(requestId) {
  api.post(`/v1/chat/completions/${api.seg(requestId)}/stop`, {}).catch(() => {
    // already finished (or gone): the stream ends either way
  });
}

function stop() {
  const turn = state.streaming;
  if (!turn) return;
  turn.stopWanted = true;
  if (turn.requestId) requestStop(turn.requestId);
}

// --- header, narrow screens -----------------------------------------------------------
$("#logout").addEventListener("click", async () => {
  try {
    await api.post("/v1/auth/logout", {});
  } catch {
    // signed out or not, the login page is where to go
  }
  window.location.assign("/login");
});

$("#new-chat").addEventListener("click", () => {
  closeSidebarOnNarrow();
  newChat();
});

const app = $("#app");
$("#toggle-sidebar").addEventListener("click", (event) => {
  const open = app.classList.toggle("sidebar-open");
  event.currentTarget.setAttribute("aria-expanded", String(open));
});

function closeSidebarOnNarrow() {
  app.classList.remove("sidebar-open");
  $("#toggle-sidebar").setAttribute("aria-expanded", "false");
}

window.addEventListener("hashchange", () => {
  const id = hashId();
  if (id && id !== state.id) select(id);
  else if (!id && state.id) newChat();
});

// --- start ------------------------------------------------------------------------------
async function start() {
  let session;
  try {
    session = await api.loadSession();
  } catch (error) {
    thread.showError(errorView(error));
    return;
  }
  if (!session) return; // on the way to /login
  setText($("#user-name"), session.user.name);
  settings.loadModels().catch((error) => thread.showError(errorView(error)));
  sidebar.refresh();
  const id = hashId();
  if (id) await select(id);
  else thread.clear();
  composer.focus();
}

start();

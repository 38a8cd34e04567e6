// The settings <dialog>: custom instructions (the user's, for every conversation), this
// conversation's system prompt, the model and the temperature. Model and temperature are
// per-browser choices sent with each turn, so they live in localStorage.

import * as api from "./api.js";
import {h} from "/common/static/dom.js";
import {createKeys} from "./keys.js";

const STORE_KEY = "chorusline.chat.settings";

function loadLocal() {
  try {
    return JSON.parse(localStorage.getItem(STORE_KEY) || "{}") || {};
  } catch {
    return {};
  }
}

function saveLocal(value) {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(value));
  } catch {
    // storage disabled: the choice lasts for this page only
  }
}

/**
 * elements: open, dialog, customInstructions, systemPrompt, model, temperature,
 *           temperatureValue, save, cancel, error, keys (for keys.js)
 * hooks: conversation() -> the open conversation or null;
 *        onSystemPrompt(text|null) -> Promise (saves it, or keeps it for the new chat)
 */
export function createSettings(elements, hooks) {
  const el = elements;
  const local = loadLocal();
  let temperature = Number.isFinite(local.temperature) ? local.temperature : 1;
  let model = local.model || null;
  const keys = createKeys(el.keys);

  function showTemperature() {
    el.temperatureValue.textContent = Number(el.temperature.value).toFixed(1);
  }

  /** Fill the model picker from /v1/models with the models that chat (not a base model,
   *  not the embedding model); keep the saved choice if it still exists. */
  async function loadModels() {
    const found = await api.get("/v1/models");
    const ids = (found.data || []).filter((m) => (m.capabilities || []).includes("chat"))
      .map((m) => m.id);
    el.model.replaceChildren(...ids.map((id) => h("option", {value: id}, id)));
    if (!model || !ids.includes(model)) model = ids[0] || null;
    if (model) el.model.value = model;
  }

  async function open() {
    el.error.textContent = "";
    el.temperature.value = String(temperature);
    showTemperature();
    if (model) el.model.value = model;
    const conversation = hooks.conversation();
    el.systemPrompt.value = (conversation && conversation.system_prompt) || hooks.pendingSystemPrompt() || "";
    el.dialog.showModal();
    try {
      const [me] = await Promise.all([api.get("/v1/me"), keys.load()]);
      el.customInstructions.value = me.custom_instructions || "";
    } catch (error) {
      el.error.textContent = error.message;
    }
  }

  async function save() {
    el.error.textContent = "";
    el.save.disabled = true;
    try {
      temperature = Number(el.temperature.value);
      model = el.model.value || model;
      saveLocal({temperature, model});
      const instructions = el.customInstructions.value.trim();
      await api.patch("/v1/me", {custom_instructions: instructions || null});
      const prompt = el.systemPrompt.value.trim();
      await hooks.onSystemPrompt(prompt || null);
      el.dialog.close();
    } catch (error) {
      el.error.textContent = error.message;
    } finally {
      el.save.disabled = false;
    }
  }

  el.open.addEventListener("click", open);
  el.save.addEventListener("click", save);
  el.cancel.addEventListener("click", () => el.dialog.close());
  el.temperature.addEventListener("input", showTemperature);

  return {
    loadModels,
    /** What each turn sends along. */
    turnOptions() {
      const out = {temperature};
      if (model) out.model = model;
      return out;
    },
  };
}

// The composer: Enter sends, Shift+Enter (or an IME composing) makes a new line; Send turns
// into Stop while a reply streams, and Esc stops it too. It reports intent; main.js sends.

/** handlers: onSend(text) -> returns truthy if it took the text; onStop() */
export function createComposer({form, prompt, send, stop, status}, handlers) {
  let streaming = false;

  function grow() {
    // Fit the textarea to its text, up to a cap (CSS max-height scrolls beyond it).
    prompt.style.height = "auto";
    prompt.style.height = `${Math.min(prompt.scrollHeight, 240)}px`;
  }

  function updateSend() {
    send.disabled = streaming || prompt.value.trim() === "";
  }

  async function submit() {
    const text = prompt.value.trim();
    if (!text || streaming) return;
    prompt.value = "";
    grow();
    updateSend();
    const taken = await handlers.onSend(text);
    if (taken === false && !prompt.value) {
      prompt.value = text; // refused before anything was stored: give the text back
      grow();
      updateSend();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  prompt.addEventListener("input", () => {
    grow();
    updateSend();
  });
  stop.addEventListener("click", () => handlers.onStop());
  // Esc stops the reply from anywhere on the page, unless it is closing a dialog or
  // leaving an inline editor (those handle their own Escape first).
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !streaming || event.defaultPrevented) return;
    if (document.querySelector("dialog[open]") || event.target.closest?.(".editor, .rename-input")) return;
    event.preventDefault();
    handlers.onStop();
  });

  /** While a reply streams: Stop shows, Send hides, the status line says so. */
  function setStreaming(value) {
    streaming = value;
    stop.hidden = !value;
    send.hidden = value;
    status.textContent = value ? "Assistant is replying…" : "";
    updateSend();
  }

  function restore(text) {
    if (prompt.value) return;
    prompt.value = text;
    grow();
    updateSend();
  }

  updateSend();
  return {setStreaming, restore, focus: () => prompt.focus()};
}

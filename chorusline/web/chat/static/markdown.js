// Assistant Markdown to safe DOM: marked renders, DOMPurify sanitises, highlight.js colours
// code. The model's text is untrusted (a prompt can make it write anything), so nothing it
// wrote reaches the page without DOMPurify, and the page's CSP backs that up.

import {Marked} from "./vendor/marked/marked.esm.js";
import createDOMPurify from "./vendor/dompurify/purify.es.mjs";
import hljs from "./vendor/highlight/highlight.min.js";
import {copyText, flashLabel, h} from "/common/static/dom.js";

const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => (
  {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

// Our own Marked instance (not the global one), GitHub-flavoured. Raw HTML the model writes
// is shown as text, as a chat should; DOMPurify below would make it harmless anyway.
const md = new Marked({gfm: true, breaks: false});
md.use({
  renderer: {
    html(token) {
      return escapeHtml(token.text);
    },
  },
});

// A private DOMPurify instance, so our hook touches nothing else on the page.
const purify = createDOMPurify(window);
purify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    // Links open elsewhere and give the new page no handle on this one.
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

const PURIFY_CONFIG = {
  FORBID_ATTR: ["style"],
  // No forms or inputs in a reply: nothing in it should look like part of the app.
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option"],
  ADD_ATTR: ["target"],
  RETURN_DOM_FRAGMENT: true,
};

/** Markdown text to a sanitised DocumentFragment. */
export function renderMarkdown(text) {
  const html = md.parse(text || "", {async: false});
  return purify.sanitize(html, PURIFY_CONFIG);
}

/**
 * Decorate code blocks inside `root`: a header with the language and a copy button and,
 * unless `highlight` is false (mid-stream, where re-highlighting every frame is wasted work),
 * highlight.js colouring. hljs escapes the code it re-writes, so it adds no markup risk.
 */
export function enhanceCode(root, {highlight = true} = {}) {
  for (const pre of root.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    if (!code || pre.parentElement.classList.contains("code-block")) continue;
    const match = /(?:^|\s)language-([\w+#.-]+)/.exec(code.className);
    const lang = match ? match[1] : "";
    if (highlight) {
      if (lang && hljs.getLanguage(lang)) {
        code.classList.add("hljs");
        code.innerHTML = hljs.highlight(code.textContent, {language: lang, ignoreIllegals: true}).value;
      } else if (!lang) {
        const auto = hljs.highlightAuto(code.textContent);
        code.classList.add("hljs");
        code.innerHTML = auto.value;
      }
    }
    const copy = h("button", {
      type: "button",
      class: "copy-code",
      "aria-label": "Copy code",
      onclick: async () => {
        try {
          await copyText(code.textContent);
          flashLabel(copy, "Copied");
        } catch {
          flashLabel(copy, "Copy failed");
        }
      },
    }, "Copy");
    const head = h("div", {class: "code-head"}, h("span", {class: "code-lang"}, lang || "code"), copy);
    const block = h("div", {class: "code-block"});
    pre.replaceWith(block);
    block.append(head, pre);
  }
}

/** Render `text` into `el` (replacing what was there). */
export function renderInto(el, text, {highlight = true} = {}) {
  el.replaceChildren(renderMarkdown(text));
  enhanceCode(el, {highlight});
}

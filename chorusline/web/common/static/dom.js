// Building elements without HTML, for every page: text goes in through text nodes,
// attributes through setAttribute/dataset, so nothing from the server or a model is ever
// parsed as markup here (the chat page's Markdown has its own sanitising path).

/**
 * h("td", {class: "num", dataset: {path: p}, title: t, onclick: fn}, "text", child, ...)
 * - `class`: className; `dataset`: data-* attributes; `on<event>`: listeners;
 * - any other key: setAttribute (null/undefined/false skip it, true sets "").
 * - children: strings/numbers become text nodes; null/undefined/false are skipped;
 *   arrays are flattened.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all of el's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Set textContent only when it changes (keeps selections and avoids layout work). */
export function setText(el, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (el.textContent !== value) el.textContent = value;
}

/** Set (or remove, for null) an attribute only when it changes. */
export function setAttr(el, name, value) {
  if (value === null || value === undefined) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== String(value)) {
    el.setAttribute(name, String(value));
  }
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

/**
 * Put `items` (elements) into `parent` in this order, moving only those out of place,
 * and remove any other children. Cheap when the order is unchanged.
 */
export function reorder(parent, items) {
  let cursor = parent.firstChild;
  for (const item of items) {
    if (item === cursor) cursor = cursor.nextSibling;
    else parent.insertBefore(item, cursor);
  }
  while (cursor) {
    const next = cursor.nextSibling;
    parent.removeChild(cursor);
    cursor = next;
  }
}

/** Call fn once `ms` after the last call (search-as-you-type). */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/**
 * Copy text to the clipboard. navigator.clipboard needs a secure context (https or
 * localhost); on plain http fall back to a hidden textarea and execCommand.
 */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = h("textarea", {class: "clipboard-helper", readonly: true, "aria-hidden": "true"});
  area.value = text;
  document.body.appendChild(area);
  area.select();
  try {
    document.execCommand("copy");
  } finally {
    area.remove();
  }
}

/** Briefly change a button's label ("Copied") and put it back. */
export function flashLabel(button, text, ms = 1200) {
  const before = button.textContent;
  button.textContent = text;
  setTimeout(() => { button.textContent = before; }, ms);
}

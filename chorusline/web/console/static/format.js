// Formatting numbers, times and fault plans for display (plain strings only).

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** Unix seconds -> local "hh:mm:ss.mmm". */
export function clock(unixSeconds) {
  if (typeof unixSeconds !== "number") return "";
  const d = new Date(unixSeconds * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Unix seconds -> local "YYYY-MM-DD hh:mm:ss". */
export function dateTime(unixSeconds) {
  if (typeof unixSeconds !== "number") return "";
  const d = new Date(unixSeconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function num(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  return value.toLocaleString("en-US", {maximumFractionDigits: digits, minimumFractionDigits: digits});
}

/** Milliseconds, with a precision that suits the size. */
export function ms(value) {
  if (value === null || value === undefined) return "–";
  if (value >= 10000) return `${num(value / 1000, 1)} s`;
  if (value >= 100) return `${num(value, 0)} ms`;
  if (value >= 1) return `${num(value, 1)} ms`;
  return `${num(value, 2)} ms`;
}

export function percent(fraction) {
  if (typeof fraction !== "number") return "–";
  return `${num(fraction * 100, 1)}%`;
}

export function seconds(value) {
  if (typeof value !== "number") return "–";
  return `${num(value, value < 10 ? 2 : 1)} s`;
}

/** "1st", "2nd", "3rd", "4th"... */
export function ordinal(n) {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  return `${n}${{1: "st", 2: "nd", 3: "rd"}[n % 10] || "th"}`;
}

/** A fault plan from snapshot.faults ({crash_after, delay, drop_fraction}) as words. */
export function describePlan(plan) {
  if (!plan || typeof plan !== "object") return "";
  const parts = [];
  if (plan.kill) parts.push("kill");
  if (plan.crash_after !== null && plan.crash_after !== undefined) {
    parts.push(plan.crash_after === 1 ? "crash on the next message"
      : `crash on the ${ordinal(plan.crash_after)} message from now`);
  }
  if (plan.delay) parts.push(`delay every message by ${seconds(plan.delay)}`);
  if (plan.drop_fraction) parts.push(`drop ${num(plan.drop_fraction * 100, 1)}% of messages`);
  return parts.length ? parts.join(", ") : "no effect";
}

/** A short one-line rendering of any JSON value (for event details). */
export function brief(value, limit = 160) {
  let text;
  try {
    text = typeof value === "string" ? value : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  if (text === undefined) text = "";
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

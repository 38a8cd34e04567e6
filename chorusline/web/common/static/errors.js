// The server's errors as the pages see them: OpenAI's body `{"error": {"message", "type",
// "code"}}` becomes an ApiError, with Retry-After (429, 503) in whole seconds, so every
// page shows a refusal the same way and can count down to the retry.

export class ApiError extends Error {
  constructor(status, message, {type = null, code = null, retryAfter = null} = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.code = code;
    this.retryAfter = retryAfter; // seconds, from Retry-After, when the server sent one
  }

  get isAuth() {
    return this.status === 401 || this.status === 403;
  }
}

/** Retry-After as whole seconds: a number of seconds or an HTTP date; null if absent. */
export function retryAfterSeconds(response) {
  const raw = response.headers.get("Retry-After");
  if (!raw) return null;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(raw);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** The refusal in `response` as an ApiError (the status line when the body is not ours). */
export async function errorFrom(response) {
  let message = `${response.status} ${response.statusText || "error"}`;
  let type = null;
  let code = null;
  try {
    const body = await response.json();
    if (body && body.error && typeof body.error.message === "string") {
      ({message} = body.error);
      type = body.error.type ?? null;
      code = body.error.code ?? null;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message, {type, code, retryAfter: retryAfterSeconds(response)});
}

/** Build "path?a=1&b=2", skipping null/undefined/"" values. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

// Same-origin requests with the session cookie. The cookie is HttpOnly (JS never sees it);
// what this module holds is the CSRF token from /v1/auth/session, sent as X-CSRF-Token on
// every state-changing request, because a cookie alone would also ride along on a request
// forged by another site.

import {ApiError, errorFrom} from "/common/static/errors.js";

export {ApiError, errorFrom, withQuery} from "/common/static/errors.js";

let csrfToken = null;

/** A signed-out page has nothing to show: go and sign in. */
export function toLogin() {
  window.location.assign("/login");
}

/** Headers for a request; writes carry the CSRF token and a JSON body type. */
export function headers(method, extra = {}) {
  const out = {Accept: "application/json", ...extra};
  if (method !== "GET" && method !== "HEAD") {
    out["Content-Type"] = "application/json";
    if (csrfToken) out["X-CSRF-Token"] = csrfToken;
  }
  return out;
}

/**
 * fetch() with the page's rules: a network failure and a refusal both reject with
 * ApiError (an abort stays an AbortError), and a 401 means the session ended (expired,
 * signed out elsewhere), so the page goes to the login page. Resolves to the response.
 */
export async function send(path, init) {
  let response;
  try {
    response = await fetch(path, {cache: "no-store", credentials: "same-origin", ...init});
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(0, "Network error: the server could not be reached");
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401) toLogin();
    throw error;
  }
  return response;
}

/** A JSON call to the API: resolves to the parsed body (null for 204). */
export async function request(method, path, {body, signal} = {}) {
  const init = {method, headers: headers(method), signal};
  if (method !== "GET" && method !== "HEAD") init.body = JSON.stringify(body === undefined ? {} : body);
  const response = await send(path, init);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, body, options) => request("POST", path, {...options, body});
export const put = (path, body, options) => request("PUT", path, {...options, body});
export const patch = (path, body, options) => request("PATCH", path, {...options, body});
export const del = (path, options) => request("DELETE", path, options);

/** Ask who is signed in; keeps the CSRF token. Resolves to null (and leaves) if nobody. */
export async function loadSession() {
  let response;
  try {
    response = await fetch("/v1/auth/session", {headers: {Accept: "application/json"}, cache: "no-store"});
  } catch {
    throw new ApiError(0, "Network error: the server could not be reached");
  }
  if (response.status === 401) {
    toLogin();
    return null;
  }
  if (!response.ok) throw await errorFrom(response);
  const session = await response.json();
  csrfToken = session.csrf_token;
  return session;
}

/** Path segment for an id from the server (ids are opaque: never trust them to be URL-safe). */
export const seg = (id) => encodeURIComponent(id);

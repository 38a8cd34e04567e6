// Authenticated requests to the admin API. The key lives only in this module's variable:
// never in storage, a cookie, a URL or a log, so a reload asks for it again.

import {ApiError, errorFrom} from "/common/static/errors.js";

export {ApiError, withQuery} from "/common/static/errors.js";

let apiKey = null;
let authFailureHandler = null;

export function setKey(key) {
  apiKey = key;
}

export function clearKey() {
  apiKey = null;
}

export function hasKey() {
  return apiKey !== null;
}

/** Called with an ApiError when any request answers 401 or 403. */
export function onAuthFailure(handler) {
  authFailureHandler = handler;
}

export function authHeaders(extra = {}) {
  const headers = {...extra};
  if (apiKey !== null) headers.Authorization = `Bearer ${apiKey}`;
  return headers;
}

/** fetch() with the key; resolves to the parsed JSON body, rejects with ApiError. */
export async function request(method, path, {body, signal} = {}) {
  const init = {method, headers: authHeaders(), signal, cache: "no-store"};
  if (method === "POST" || method === "PUT" || method === "PATCH") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body === undefined ? {} : body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(0, `network error: ${error && error.message ? error.message : error}`);
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (error.isAuth && authFailureHandler) authFailureHandler(error);
    throw error;
  }
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, body, options) => request("POST", path, {...options, body});
export const del = (path, options) => request("DELETE", path, options);

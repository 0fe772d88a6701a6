// Calls to the box's JSON API. The API key (when the box has keys) is kept in sessionStorage
// for this tab only and sent the way each transport allows: the X-API-Key header on fetch and
// XMLHttpRequest, `?api_key=` where the browser cannot set headers (EventSource, <img>,
// <video>, download links).

const STORE = "xnoryolo.apiKey";
let askKey = () => {};

export function onKeyNeeded(fn) { askKey = fn; }
export const getKey = () => sessionStorage.getItem(STORE) || "";
export function setKey(key) {
  if (key) sessionStorage.setItem(STORE, key);
  else sessionStorage.removeItem(STORE);
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : describe(detail));
    this.status = status;
    this.detail = detail;
  }
}

// A FastAPI `detail`: a string, or a list of {loc, msg} for invalid fields.
export function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".")}: ${e.msg}`)
      .join("; ");
  }
  return "the server refused the request";
}

export function withKey(url) {
  const key = getKey();
  if (!key) return url;
  return `${url}${url.includes("?") ? "&" : "?"}api_key=${encodeURIComponent(key)}`;
}

export function headers(extra = {}) {
  const h = { ...extra };
  const key = getKey();
  if (key) h["X-API-Key"] = key;
  return h;
}

async function failure(res) {
  let detail = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body && body.detail !== undefined) detail = body.detail;
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(res.status, detail);
}

// fetch() with the key; JSON back (null for 204). A 401 asks for a key and throws.
export async function api(path, { method = "GET", body, json } = {}) {
  const init = { method, headers: headers() };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, "the box does not answer (network error)");
  }
  if (res.status === 401) {
    const err = await failure(res);
    askKey(getKey() ? "That API key was not accepted. Enter a valid key." : "");
    throw err;
  }
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return null;
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

// EventSource with the key in the query; `handlers` maps event names to functions of the
// parsed data. Closed by the caller (views close theirs when the page changes).
export function events(path, handlers, onError) {
  const es = new EventSource(withKey(path));
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (ev) => fn(JSON.parse(ev.data)));
  }
  if (onError) es.onerror = () => onError(es);
  return es;
}

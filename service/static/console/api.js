// Requests to this page's own origin only (relative paths), with the token when one is set.
// The token lives in sessionStorage: this tab only, gone when it closes.

const TOKEN_KEY = "unipelt-token";
// The app's root: the console lives at <root>/console/, so a path prefix (root_path) works.
const ROOT = new URL("../", window.location.href);

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, kind, detail) {
    super(`${kind}: ${detail}`);
    this.status = status;
    this.kind = kind;
    this.detail = detail;
  }
}

// Fetch `path` (a path on this origin) and return its JSON or text; an error answer
// becomes an ApiError with the API's own kind and detail.
export async function call(path, { method = "GET", body, text = false } = {}) {
  const url = new URL(path.replace(/^\/+/, ""), ROOT);
  if (!path.startsWith("/") || url.origin !== window.location.origin) {
    throw new Error(`not a path of this app: ${path}`);
  }
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (!response.ok) {
    let kind = `http_${response.status}`;
    let detail = response.statusText;
    try {
      const err = await response.json();
      kind = err.error || kind;
      detail = err.detail ?? detail;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, kind, detail);
  }
  return text ? response.text() : response.json();
}

// Run `worker` over `items` with at most `limit` at once; results in input order.
export async function mapLimited(items, limit, worker) {
  const out = new Array(items.length);
  let next = 0;
  async function lane() {
    while (next < items.length) {
      const i = next++;
      out[i] = await worker(items[i]).catch((e) => e);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

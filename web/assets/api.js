// The JSON API as the UI uses it: same-origin fetch with the session cookie; requests
// that change something carry the session's CSRF token. A 401 on anything but the
// sign-in calls means the session ended: listeners send the user back to sign-in.

let csrf = null;
const expiredListeners = [];

export class ApiError extends Error {
  constructor(status, body, etag) {
    const e = body?.error || {};
    super(e.message || `the server answered ${status}`);
    this.status = status;
    this.code = e.code || String(status);
    this.fields = e.fields || [];
    this.requestId = e.request_id;
    // A 412: the thing as it is now, and its version.
    this.current = body?.current;
    this.etag = etag;
  }
}

// The ETag each answer came with (the version to send back as If-Match).
const etags = new WeakMap();
/** The version (ETag) an object from `api()` came with, if any. */
export function etagOf(obj) { return obj && typeof obj === "object" ? etags.get(obj) : undefined; }

export function setCsrf(token) { csrf = token; }
export function onExpired(fn) { expiredListeners.push(fn); }

const AUTH_CALLS = ["/api/auth/login", "/api/auth/setup", "/api/auth/me", "/api/auth/reset-password"];

export async function api(method, path, body, { ifMatch } = {}) {
  const headers = { Accept: "application/json" };
  if (ifMatch) headers["If-Match"] = ifMatch;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
  let res;
  try {
    res = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { error: { code: "network", message: "cannot reach the server; is it running?" } });
  }
  const data = res.status === 204 || res.status === 202 && !res.headers.get("content-type")
    ? null : await res.json().catch(() => null);
  if (res.status === 401 && !AUTH_CALLS.includes(path.split("?")[0])) {
    csrf = null;
    for (const fn of expiredListeners) fn();
  }
  if (!res.ok) throw new ApiError(res.status, data, res.headers.get("etag"));
  const etag = res.headers.get("etag");
  if (etag && data && typeof data === "object") etags.set(data, etag);
  return data;
}

/** Query string from an object, leaving out empty values. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : "";
}

/**
 * Follow a background job (the `job` of a 202 answer) until it ends: resolves with the
 * finished job when it succeeded, throws an ApiError with the job's error when it
 * failed. `onProgress(job)` sees each poll while it runs.
 */
export async function waitJob(job, onProgress) {
  let j = job;
  while (j.state === "running") {
    if (onProgress) onProgress(j);
    await new Promise((r) => setTimeout(r, 400));
    j = (await api("GET", `/api/admin/jobs/${j.id}`)).job;
  }
  if (j.state !== "succeeded") {
    throw new ApiError(422, { error: { message: j.error || `the job ended ${j.state}` } });
  }
  return j;
}

/**
 * POST a file-sized body with upload progress (fetch cannot report it):
 * `onProgress(sentBytes, totalBytes)` while it goes up. Resolves with the JSON answer;
 * throws an ApiError like `api()`.
 */
export function upload(path, body, contentType, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Content-Type", contentType);
    if (csrf) xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.upload.addEventListener("progress", (e) => { if (onProgress && e.lengthComputable) onProgress(e.loaded, e.total); });
    xhr.addEventListener("load", () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 401) { csrf = null; for (const fn of expiredListeners) fn(); }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { error: { code: "network", message: "the upload did not reach the server; is it running?" } })));
    xhr.send(body);
  });
}

// The HTTP API: reads that fall back to the copy kept on this device, and
// writes that turn the contract's error shape into an ApiError.
import * as db from './db.js';

export class ApiError extends Error {
  constructor(status, code, message, details = null, retryAfter = null) {
    super(message);
    this.status = status; // 0: no answer at all (offline, server down)
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // a proxy's HTML error page: the status says enough
  }
  const error = body?.error ?? {};
  return new ApiError(
    response.status,
    error.code || `http_${response.status}`,
    error.message || response.statusText,
    error.details ?? null,
    response.headers.get('Retry-After'),
  );
}

/** A JSON request; resolves to {status, data} (data null for 204), rejects with ApiError. */
export async function request(method, path, { body, token, headers = {} } = {}) {
  const sent = { Accept: 'application/json', ...headers };
  if (body !== undefined) sent['Content-Type'] = 'application/json';
  if (token) sent.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'no answer from the server');
  }
  if (!response.ok) throw await errorOf(response);
  return { status: response.status, data: response.status === 204 ? null : await response.json() };
}

/**
 * A public read. Fresh from the server when it answers (and then kept under
 * `key`); otherwise the copy the service worker or IndexedDB kept, with
 * `cached` = when it was fetched, so the page can say it may be out of date.
 */
/**
 * The worker's copy is the last answer the network gave; the page may have kept
 * a later one since (live events it applied, such as an amendment): the newer wins.
 */
function newer(copy, kept) {
  if (kept && !(Date.parse(copy.cached) > Date.parse(kept.at))) return { data: kept.data, cached: kept.at };
  return copy;
}

export async function load(path, key) {
  let failure = new ApiError(0, 'network', 'no answer from the server');
  try {
    const response = await fetch(path, { headers: { Accept: 'application/json' } });
    if (response.ok) {
      const data = await response.json();
      const cached = response.headers.get('X-Sunbid-Cached'); // set by sw.js for its own copies
      if (cached) return newer({ data, cached }, key ? await db.get(key) : null);
      if (key) db.put(key, { data, at: new Date().toISOString() });
      return { data, cached: null };
    }
    failure = await errorOf(response);
    if (response.status < 500) throw failure; // a refusal is an answer: no stale copy instead
  } catch (error) {
    if (error instanceof ApiError && error.status) throw error;
  }
  const kept = key ? await db.get(key) : null;
  if (kept) return { data: kept.data, cached: kept.at };
  throw failure;
}

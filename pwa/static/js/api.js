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
 * The worker's copy is the last answer the network gave; the page may have kept
 * a later one since (live events it applied, such as an amendment): the newer wins.
 */
function newer(copy, kept) {
  if (kept && !(Date.parse(copy.cached) > Date.parse(kept.at))) return { data: kept.data, cached: kept.at };
  return copy;
}

// A page shown again need not wait for the network, which on a slow phone
// network is most of the wait. While `quick` is set (the first render of a
// page, see app.js), a read with a copy kept on this device answers with it at
// once; right after the render the app fetches each such read again
// (`stillFresh`) and renders the page once more only when the answer differs.
// The fresh answers are kept in `checked` for that second render, once each.
let quick = null;
const checked = new Map();

/** From now on, reads with a kept copy answer with it at once (see above); a handle for `servedQuickly`. */
export function answerQuickly() {
  quick = [];
  return quick;
}

/** Stop answering from kept copies (unless a later render started since); the reads that were, [{path, key, kept}]. */
export function servedQuickly(handle) {
  if (quick === handle) quick = null;
  return handle;
}

/**
 * Each read answered from a kept copy, fetched again now: 'same' (every answer
 * as kept), 'stale' (the same, but only a copy again: no network) or 'changed'
 * (a new answer, or a refusal). The new answers wait for the next `load` of
 * the same path, which a second render does.
 */
export async function stillFresh(served) {
  const verdicts = await Promise.all(served.map(async ({ path, key, kept }) => {
    try {
      const answer = await fetchOrKept(path, key);
      checked.set(path, answer);
      if (JSON.stringify(answer.data) !== JSON.stringify(kept.data)) return 'changed';
      return answer.cached ? 'stale' : 'same';
    } catch {
      return 'changed'; // refused now: the second render shows it
    }
  }));
  return ['changed', 'stale'].find((verdict) => verdicts.includes(verdict)) ?? 'same';
}

/** Forget the answers `stillFresh` fetched for these reads that no render used. */
export const forgetChecked = (served) => served.forEach(({ path }) => checked.delete(path));

/**
 * A public read. Fresh from the server when it answers (and then kept under
 * `key`); otherwise the copy the service worker or IndexedDB kept, with
 * `cached` = when it was fetched, so the page can say it may be out of date.
 */
export async function load(path, key) {
  const answer = checked.get(path);
  if (answer) {
    checked.delete(path);
    return answer;
  }
  const render = quick; // the render this read is for, even if another starts meanwhile
  if (render && key) {
    const kept = await db.get(key);
    if (kept) {
      render.push({ path, key, kept });
      return { data: kept.data, cached: null };
    }
  }
  return fetchOrKept(path, key);
}

async function fetchOrKept(path, key) {
  let failure = new ApiError(0, 'network', 'no answer from the server');
  try {
    // No request headers of its own: the server answers JSON anyway, and the
    // read then matches the shell's `Link: …; rel=preload` (server/api/pages.py),
    // which the browser fetched while the app's code was still loading.
    const response = await fetch(path);
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

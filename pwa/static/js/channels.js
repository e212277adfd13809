// Notification channels beside Web Push (SMS, e-mail, WeChat): which kinds the
// server offers, and the channels this device added.
//
// A channel lives on the server; without accounts, its manage token is the
// only key to it, so this device keeps what it needs to show and cancel each
// one: {id, kind, manage_token, address_hint, topics, status} in localStorage
// 'sunbid.channels' (like the follows, see follows.js). The address itself is
// never kept: the server's masked hint ("138****5678") is enough to recognise it.
import { ApiError, request } from './api.js';

const KEY = 'sunbid.channels';
export const KINDS = ['sms', 'email', 'wechat'];
export const MAX_TOPICS = 64; // as many as a push subscription takes
export const changes = new EventTarget();

const isChannel = (c) => typeof c?.id === 'string' && /^[A-Za-z0-9_-]{1,128}$/.test(c.id)
  && KINDS.includes(c.kind) && typeof c.manage_token === 'string' && c.manage_token.length > 0;

function read() {
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) || '[]');
    return Array.isArray(stored) ? stored.filter(isChannel) : [];
  } catch {
    return []; // damaged: the channels still reach their addresses, and each message can cancel itself
  }
}

let kept = read();

export const list = () => kept.map((c) => ({ ...c }));
export const get = (id) => {
  const found = kept.find((c) => c.id === id);
  return found ? { ...found } : null;
};

function save(next) {
  kept = next;
  localStorage.setItem(KEY, JSON.stringify(kept));
  changes.dispatchEvent(new Event('change'));
}

const keep = (channel) => save(get(channel.id) ? kept.map((c) => (c.id === channel.id ? { ...c, ...channel } : c)) : [...kept, channel]);
const forget = (id) => save(kept.filter((c) => c.id !== id));

// Another tab added or cancelled one.
addEventListener('storage', (event) => {
  if (event.key !== KEY) return;
  kept = read();
  changes.dispatchEvent(new Event('change'));
});

let offered = null;
/**
 * The kinds the server is set up for (possibly []), or null when it did not
 * answer. Asked once per page load, and only by what shows them: most pages never do.
 */
export function available() {
  offered ??= request('GET', '/api/channels/available')
    .then(({ data }) => (Array.isArray(data?.kinds) ? KINDS.filter((k) => data.kinds.includes(k)) : []))
    .catch(() => {
      offered = null; // asked again next time
      return null;
    });
  return offered;
}

/** WeChat's web authorization works only inside WeChat's own browser. */
export const inWeChat = () => /MicroMessenger/i.test(navigator.userAgent);

/** Where the app sends the reader to add a WeChat channel: WeChat's consent replaces the code. */
export const wechatAuthorizeUrl = (topics) =>
  `/api/channels/wechat/authorize?topics=${encodeURIComponent(topics.slice(0, MAX_TOPICS).join(','))}`;

/** Shown until the server's own hint arrives: the same masking, done here. */
export function mask(kind, address) {
  const text = address.trim();
  if (kind === 'sms') return text.length > 7 ? `${text.slice(0, 3)}****${text.slice(-4)}` : '****';
  const at = text.lastIndexOf('@');
  return at > 0 ? `${text[0]}***${text.slice(at)}` : '***';
}

const managed = (channel) => ({ headers: { 'X-Manage-Token': channel.manage_token } });
const path = (id) => `/api/channels/${encodeURIComponent(id)}`;

/**
 * Ask for an SMS or e-mail channel following `topics`; the server sends a
 * code to `address`. Resolves to the channel as kept here (status 'pending');
 * rejects with the server's ApiError.
 */
export async function add(kind, address, topics) {
  const sent = topics.slice(0, MAX_TOPICS);
  const { data } = await request('POST', '/api/channels', { body: { kind, address: address.trim(), topics: sent } });
  keep({ id: data.id, kind, manage_token: data.manage_token, status: data.status || 'pending', topics: sent, address_hint: mask(kind, address) });
  await refresh(data.id).catch(() => {}); // the server's hint; the local one until it answers
  return get(data.id);
}

/** The code the address received; resolves once the channel is active. */
export async function confirm(id, code) {
  const { data } = await request('POST', `${path(id)}/confirm`, { body: { code } });
  keep({ id, status: data?.status || 'active' });
}

/** The server's view of a kept channel; one it no longer knows (404) is forgotten here too. */
export async function refresh(id) {
  const channel = get(id);
  if (!channel) return null;
  try {
    const { data } = await request('GET', path(id), managed(channel));
    const { kind, status, topics, address_hint: hint } = data ?? {};
    keep({
      id,
      ...(KINDS.includes(kind) && { kind }),
      ...(typeof status === 'string' && { status }),
      ...(Array.isArray(topics) && { topics }),
      ...(typeof hint === 'string' && hint && { address_hint: hint }),
    });
    return get(id);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      forget(id);
      return null;
    }
    throw error;
  }
}

/** Cancel in one step: the server erases the address. One it no longer knows is gone already. */
export async function cancel(id) {
  const channel = get(id);
  if (!channel) return;
  try {
    await request('DELETE', path(id), managed(channel));
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
  }
  forget(id);
}

const fromAddress = () => {
  const params = new URLSearchParams(location.hash.slice(1));
  return [params.get('channel'), params.get('token')];
};

/** The address bar names a channel: the reader is back from WeChat's authorization. */
export const namedInAddress = () => fromAddress().every(Boolean);

/**
 * Back from WeChat's authorization at `/follows#channel=<id>&token=<secret>`:
 * the channel is kept like the others and the secret leaves the address bar
 * (and the history) at once. Resolves to the channel, or null when the URL
 * names none or the server does not know it.
 */
export async function adoptFromAddress() {
  const [id, token] = fromAddress();
  if (!id || !token) return null;
  history.replaceState(history.state, '', location.pathname + location.search);
  const channel = { id, kind: 'wechat', manage_token: token, status: 'active', topics: [], address_hint: '' };
  if (!isChannel(channel)) return null;
  keep(channel);
  return refresh(id).catch(() => get(id)); // no answer now: kept as WeChat said, checked next visit
}

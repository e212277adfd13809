// The service worker (scope /): the app shell offline, the data last seen,
// and Web Push. A classic script on purpose: module workers are not yet
// everywhere the app should run.

// The server fills these two lines in (server/api/pages.py): a digest of all
// the app's files, and the list of them. Any change to any file is therefore
// a new worker with a new cache, and nobody has to keep a list by hand.
const BUILD = "dev";
const ASSETS = [];

const SHELL = `sunbid-shell-${BUILD}`;
const DATA = 'sunbid-data';
const DATA_ENTRIES = 200;
const PAGES = /^\/(p\/[^/]+|follows|mine|request|catalog|stats|staff)?$/;
// Streams, staff data and push bookkeeping are never served from a cache, nor
// notification channels (a channel's masked address is no one else's to keep, and
// WeChat's authorization is a redirect the browser must follow itself), nor
// enquiries and disclosure requests (read with a ticket: a person's own case,
// which the app keeps itself, cases.js).
const LIVE_ONLY = /^\/api\/(stream|supervision\/|events\/\d+\/deliveries|push\/|channels(\/|$)|enquiries|disclosure-requests)/;
const ICON = '/static/icons/icon-192.png';
const BADGE = '/static/icons/badge-96.png';

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(SHELL)
      .then((cache) => cache.addAll(['/', '/manifest.webmanifest', ...ASSETS]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith('sunbid-shell-') && n !== SHELL).map((n) => caches.delete(n))))
      // Take over the page that registered us, so its next requests are cached too.
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === 'navigate' && PAGES.test(url.pathname)) {
    event.respondWith(shell(request));
  } else if (url.pathname.startsWith('/static/') || url.pathname === '/manifest.webmanifest') {
    event.respondWith(cacheFirst(request));
  } else if (url.pathname.startsWith('/api/') && !LIVE_ONLY.test(url.pathname) && !request.headers.has('Authorization')) {
    event.respondWith(networkFirst(event));
  }
});

// Every page is the same shell: served from the cache at once, online or not.
// Without the `Link` header of '/' (what the list fetches first): this may be
// another page, whose data comes from the copy kept on the device first anyway.
async function shell(request) {
  const kept = await caches.match('/', { cacheName: SHELL });
  if (!kept) return fetch(request);
  const headers = new Headers(kept.headers);
  headers.delete('Link');
  return new Response(kept.body, { status: kept.status, statusText: kept.statusText, headers });
}

async function cacheFirst(request) {
  const kept = await caches.match(request, { cacheName: SHELL });
  if (kept) return kept;
  const response = await fetch(request);
  if (response.ok) (await caches.open(SHELL)).put(request, response.clone());
  return response;
}

// Data: the network's answer when there is one; otherwise the last one kept,
// marked so the app can say it may be out of date.
async function networkFirst(event) {
  const cache = await caches.open(DATA);
  try {
    const response = await fetch(event.request);
    if (response.ok) event.waitUntil(cache.put(event.request, response.clone()).then(() => trim(cache)));
    return response;
  } catch (error) {
    const kept = await cache.match(event.request);
    if (!kept) return Response.error();
    const headers = new Headers(kept.headers);
    headers.set('X-Sunbid-Cached', kept.headers.get('Date') || 'earlier');
    return new Response(kept.body, { status: kept.status, statusText: kept.statusText, headers });
  }
}

async function trim(cache) {
  const keys = await cache.keys();
  await Promise.all(keys.slice(0, Math.max(0, keys.length - DATA_ENTRIES)).map((key) => cache.delete(key)));
}

// --- push -------------------------------------------------------------------------

self.addEventListener('push', (event) => {
  // Always show something: a push that shows nothing can cost the permission (Safari).
  event.waitUntil(notify(event.data));
});

async function notify(data) {
  let message = {};
  try {
    message = data ? data.json() : {};
  } catch {
    // not JSON: the fallback texts below
  }
  await show(message);
  // An open page hears of it too: an answer to this device's own question changes what it waits on.
  if (message.event) {
    for (const client of await self.clients.matchAll({ type: 'window' })) client.postMessage({ type: 'push', event: message.event });
  }
}

function show(message) {
  const declared = message.notification ?? {}; // the Declarative Web Push form carries the same texts
  const tag = message.tag || declared.tag;
  return self.registration.showNotification(message.title || declared.title || '阳光交易', {
    body: message.body ?? declared.body ?? '有新的交易信息，点击查看。',
    tag,
    renotify: Boolean(tag),
    data: { url: message.url || declared.navigate || '/' },
    lang: 'zh-CN',
    icon: ICON,
    badge: BADGE,
  });
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  let target = new URL(event.notification.data?.url || '/', self.location.origin);
  if (target.origin !== self.location.origin) target = new URL('/', self.location.origin);
  event.waitUntil(openOrFocus(target.href));
});

async function openOrFocus(url) {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const there = windows.find((client) => client.url === url);
  if (there) return there.focus();
  for (const client of windows) {
    try {
      const moved = await client.navigate(url); // only for windows this worker controls
      if (moved) return moved.focus();
    } catch {
      // not ours to navigate: try the next, or open a new one
    }
  }
  return self.clients.openWindow(url);
}

// The push service replaced the subscription: subscribe again and tell the
// server, with the topics it last accepted (push.js keeps them in IndexedDB:
// the follows and the enquiries waiting for an answer), or the follows.
self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil(resubscribe(event.oldSubscription, event.newSubscription));
});

async function resubscribe(old, renewed) {
  let subscription = renewed;
  if (!subscription) {
    const key = old?.options?.applicationServerKey ?? (await vapidKey());
    subscription = await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  }
  const post = (method, body) => fetch('/api/push/subscriptions', {
    method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  if (old && old.endpoint !== subscription.endpoint) await post('DELETE', { endpoint: old.endpoint });
  const topics = (await stored('push'))?.topics ?? (await stored('follows')) ?? [];
  if (topics.length) await post('POST', { subscription: subscription.toJSON(), topics: topics.slice(0, 64) });
}

async function vapidKey() {
  const { publicKey } = await (await fetch('/api/push/vapid-key')).json();
  const base64 = publicKey.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(publicKey.length / 4) * 4, '=');
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** A value the app put in IndexedDB (static/js/db.js: database 'sunbid', store 'kv'). */
function stored(key) {
  return new Promise((resolve) => {
    const open = indexedDB.open('sunbid', 1);
    open.onupgradeneeded = () => open.result.createObjectStore('kv');
    open.onerror = () => resolve(undefined);
    open.onsuccess = () => {
      const read = open.result.transaction('kv').objectStore('kv').get(key);
      read.onsuccess = () => resolve(read.result);
      read.onerror = () => resolve(undefined);
    };
  });
}

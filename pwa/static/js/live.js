// Live updates: one WebSocket to /ws for everything this page needs — the
// followed topics, the project on screen and, for supervisors, warnings.
//
// The server promises that `since` = the last seq processed brings every
// matching event exactly once, in order, after any disconnect. So this module
// keeps that seq (the cursor: in memory for this tab, in localStorage for the
// next start), subscribes with it after every (re)connect, and drops what it
// has already processed. A connection opens with a ping: its pong's head is a
// safe cursor for a device that has none yet (no topics, so nothing in flight).
import * as follows from './follows.js';

const CURSOR_KEY = 'sunbid.cursor';
const PING_EVERY = 25_000; // idle proxies cut connections after 30-120 s
const PONG_WITHIN = 10_000;
const PONG_AFTER_WAKE = 4_000; // after sleep a dead socket should be noticed quickly
const BACKOFF_FIRST = 500;
const BACKOFF_CAP = 30_000;
const AUTH_WITHIN = 10_000;
const SUPERVISION = 'supervision';

const bus = new EventTarget(); // 'event', 'warning', 'status', 'ready' (with a count), 'error'
const pageTopics = new Set();
const onSocket = new Set(); // topics subscribed on the current socket
let ws = null;
let greeted = false; // the first pong on this socket came: subscriptions were sent
let pending = 0; // subscribes sent and not yet answered: 'live' means none is
let ready = false; // the first subscription round on this socket was answered
let readyCount = 0; // how many times a socket became ready: 1 is the first connection
let state = 'connecting';
let attempt = 0;
let retryTimer = 0;
let pongTimer = 0;
let heard = 0; // when the socket last said anything
let token = null;
let supervision = false;
let authWaiters = [];
let cursor = readCursor();

function readCursor() {
  const stored = localStorage.getItem(CURSOR_KEY);
  const seq = stored === null ? NaN : Number(stored);
  return Number.isSafeInteger(seq) && seq >= 0 ? seq : null;
}

function setCursor(seq) {
  cursor = seq;
  localStorage.setItem(CURSOR_KEY, String(seq));
}

const emit = (type, detail) => bus.dispatchEvent(new CustomEvent(type, { detail }));

function setState(next) {
  if (next === state) return;
  state = next;
  emit('status', next);
}

const publicTopics = () => [...new Set([...follows.list(), ...pageTopics])].slice(0, 64);

function send(message) {
  if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function connect() {
  clearTimeout(retryTimer);
  if (ws) return;
  if (navigator.onLine === false) {
    // No socket while the device says it is offline (it would only fail); look again
    // now and then, in case the 'online' event never comes.
    setState('offline');
    retryTimer = setTimeout(connect, 2000);
    return;
  }
  setState('connecting');
  let socket;
  try {
    socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  } catch {
    retry(backoff(attempt));
    return;
  }
  ws = socket;
  socket.onopen = () => {
    if (token) send({ op: 'auth', token });
    ping(PONG_WITHIN);
  };
  socket.onmessage = (message) => {
    heard = Date.now();
    receive(message.data);
  };
  socket.onclose = (event) => socket === ws && closed(event.code);
}

/** Forget the socket at once: a dead one may take minutes to report its close. */
function drop() {
  const socket = ws;
  ws = null;
  greeted = ready = false;
  pending = 0;
  onSocket.clear();
  clearTimeout(pongTimer);
  pongTimer = 0;
  if (socket) {
    socket.onopen = socket.onmessage = socket.onclose = null;
    try {
      socket.close();
    } catch {
      // already closing
    }
  }
}

function closed(code) {
  drop();
  if (code === 4008) retry(0); // lagging: resume from the cursor right away
  else if (code === 1001 || code === 1012) retry(250 + Math.random() * 1000); // restarting: soon, not all at once
  else retry(backoff(code === 4029 ? Math.max(attempt, 5) : attempt));
}

// Exponential with "equal jitter": half fixed, half random, so a restarted
// server is not met by every client in the same instant.
const backoff = (n) => {
  const base = Math.min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** n);
  return base / 2 + (Math.random() * base) / 2;
};

function retry(delay) {
  clearTimeout(retryTimer);
  attempt += 1;
  setState(navigator.onLine === false || attempt > 2 ? 'offline' : 'connecting');
  retryTimer = setTimeout(connect, delay);
}

// Any frame proves the connection alive: a long replay may hold the pong back.
function ping(within) {
  send({ op: 'ping' });
  clearTimeout(pongTimer);
  const asked = Date.now();
  const check = () => {
    if (heard >= asked) {
      pongTimer = 0;
      return;
    }
    pongTimer = 0;
    drop();
    retry(0);
  };
  pongTimer = setTimeout(check, within);
}

function receive(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return;
  }
  switch (message.op) {
    case 'pong':
      clearTimeout(pongTimer);
      pongTimer = 0;
      if (!greeted) start(message.head);
      break;
    case 'subscribed':
      answered();
      break;
    case 'event':
      // Already processed: a replay overlapping what this tab has seen.
      if (cursor !== null && message.event.seq <= cursor) return;
      setCursor(message.event.seq);
      emit('event', message.event);
      break;
    case 'warning':
      emit('warning', message.warning);
      break;
    case 'authed':
      settleAuth(message.role, null);
      break;
    case 'error':
      if (message.code === 'unauthorized' || message.code === 'token_revoked') {
        token = null; // revoked since it was checked (or while signed in), or never valid
        settleAuth(null, 'unauthorized');
      } else {
        answered(); // a refused subscription must not leave the page "connecting"
      }
      emit('error', message);
      break;
  }
}

function start(head) {
  greeted = true;
  // A device with no cursor starts from now; a cursor past the head means the log was reset.
  if (cursor === null || head < cursor) setCursor(head);
  subscribe([...publicTopics(), ...(token && supervision ? [SUPERVISION] : [])]);
  settle();
}

function subscribe(topics) {
  const events = topics.filter((t) => t !== SUPERVISION);
  const sent = [];
  if (events.length) sent.push({ op: 'subscribe', topics: events, since: cursor });
  if (events.length < topics.length) sent.push({ op: 'subscribe', topics: [SUPERVISION] });
  for (const message of sent) {
    send(message);
    pending += 1;
  }
  topics.forEach((t) => onSocket.add(t));
  if (sent.length) setState('connecting');
}

function answered() {
  pending = Math.max(0, pending - 1);
  settle();
}

/** Everything asked for is subscribed: the page is live. */
function settle() {
  if (!greeted || pending) return;
  setState('live');
  if (ready) return;
  ready = true;
  attempt = 0;
  emit('ready', ++readyCount);
}

/** Bring the socket's subscriptions in line with what the page wants now. */
function sync() {
  if (!greeted) return; // start() subscribes everything once the socket is up
  const wanted = new Set(publicTopics());
  if (token && supervision) wanted.add(SUPERVISION);
  const gone = [...onSocket].filter((t) => !wanted.has(t));
  if (gone.length) {
    send({ op: 'unsubscribe', topics: gone });
    gone.forEach((t) => onSocket.delete(t));
  }
  const added = [...wanted].filter((t) => !onSocket.has(t));
  if (added.length) subscribe(added);
}

/** The phone woke, came back online or restored the page from its cache: check at once. */
function wake() {
  if (document.visibilityState === 'hidden') return;
  if (!ws) {
    attempt = 0;
    connect();
  } else if (ws.readyState === WebSocket.OPEN) {
    ping(PONG_AFTER_WAKE);
  }
}

function settleAuth(role, error) {
  const waiters = authWaiters;
  authWaiters = [];
  for (const waiter of waiters) {
    clearTimeout(waiter.timer);
    if (role) waiter.resolve(role);
    else waiter.reject(new Error(error));
  }
}

export const live = {
  start() {
    connect();
    setInterval(() => greeted && ping(PONG_WITHIN), PING_EVERY);
    document.addEventListener('visibilitychange', wake);
    addEventListener('online', wake);
    addEventListener('pageshow', (event) => event.persisted && wake());
    addEventListener('offline', () => {
      drop();
      retry(backoff(0));
    });
    follows.changes.addEventListener('change', sync);
  },
  state: () => state,
  on(type, listener) {
    const handler = (event) => listener(event.detail);
    bus.addEventListener(type, handler);
    return () => bus.removeEventListener(type, handler);
  },
  /** Topics the current page needs besides the follows (its project). */
  setPageTopics(topics) {
    pageTopics.clear();
    topics.forEach((t) => pageTopics.add(t));
    sync();
  },
  /** Check a staff token on the socket; resolves to its role, rejects 'unauthorized' or 'timeout'. */
  signIn(secret) {
    token = secret;
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      waiter.timer = setTimeout(() => {
        authWaiters = authWaiters.filter((w) => w !== waiter);
        token = null; // unchecked: not sent again on the next connection
        reject(new Error('timeout'));
      }, AUTH_WITHIN);
      authWaiters.push(waiter);
      if (ws?.readyState === WebSocket.OPEN) send({ op: 'auth', token });
      else if (!ws) wake();
    });
  },
  /** Forget the token: a new connection, so the old one's rights go with it. */
  signOut() {
    token = null;
    supervision = false;
    drop();
    connect();
  },
  watchSupervision(on) {
    supervision = on;
    sync();
  },
};

// Web Push: turning notifications on and off, and keeping the server's copy of
// this device's subscription (endpoint + followed topics) current.
//
// "On" means one thing only: the server answered 2xx to POST
// /api/push/subscriptions. What it accepted ({endpoint, topics, at}) is kept in
// IndexedDB under 'push'; every switch and every follows list reads that one
// record, and other tabs hear of a change at once. Each step that waits on
// something outside the page (the service worker, the push service, the
// server) has a time limit, so turning on ends either on or with a reason.
import { request } from './api.js';
import * as db from './db.js';
import * as follows from './follows.js';
import * as cases from './cases.js';

const RECORD = 'push';
export const STEP_WITHIN = 15_000; // the service worker, the push service, the server: each this long at most
const ANSWER_WITHIN = 60_000; // a person deciding on the permission prompt
const MAX_TOPICS = 64;

// What this device is told of: each enquiry of its own still waiting for an answer (few,
// and asked for), then what it follows.
const toldOf = () => [...new Set([...cases.topics(), ...follows.list()])].slice(0, MAX_TOPICS);

/** Why a step failed: `reason` is one of the codes `explain` in the switch knows. */
export class PushError extends Error {
  constructor(reason, cause = null) {
    super(reason);
    this.reason = reason;
    this.cause = cause;
  }
}

export const changes = new EventTarget();
const channel = self.BroadcastChannel ? new BroadcastChannel('sunbid.push') : null;
let accepted = null; // {endpoint, topics, at}: what the server last accepted, or null
let busy = false;
const OLD_FLAG = 'sunbid.push';
let wanted = false; // turned on by an earlier version, not yet confirmed by the server

/** Resolves once the record kept in IndexedDB is known. */
export const loaded = db.get(RECORD).then((kept) => {
  accepted = kept?.endpoint ? kept : null;
  // Earlier versions kept only a flag saying "turned on here": the next sync asks the server again.
  if (localStorage.getItem(OLD_FLAG) === 'on' && !accepted) wanted = true;
  localStorage.removeItem(OLD_FLAG);
});

channel?.addEventListener('message', async () => {
  accepted = (await db.get(RECORD)) ?? null;
  changes.dispatchEvent(new Event('change'));
});

async function remember(record) {
  accepted = record;
  await db.put(RECORD, record);
  channel?.postMessage('change');
  changes.dispatchEvent(new Event('change'));
}

export const isIOS = () =>
  /iPad|iPhone|iPod/.test(navigator.userAgent) || (navigator.platform === 'MacIntel' && navigator.maxTouchPoints > 1);
export const isStandalone = () =>
  matchMedia('(display-mode: standalone)').matches || navigator.standalone === true;

/**
 * 'ok', or why this browser cannot receive push here: 'ios-install' (iOS allows
 * push only to Home Screen apps), 'insecure' (not https), 'no-worker' (no
 * service workers, e.g. some private modes), 'unsupported' (no PushManager or
 * Notification), 'denied' (the person blocked notifications for this site).
 */
export function support() {
  if (isIOS() && !isStandalone()) return 'ios-install';
  if (self.isSecureContext === false) return 'insecure';
  if (!('serviceWorker' in navigator)) return 'no-worker';
  if (!('PushManager' in window && 'Notification' in window)) return 'unsupported';
  return Notification.permission === 'denied' ? 'denied' : 'ok';
}

/** On: the server accepted this device's subscription, and the browser still allows notifications. */
export const enabled = () => accepted !== null && support() === 'ok' && Notification.permission === 'granted';
export const isBusy = () => busy;
/** The topics the server accepted for this device ([] when off). */
export const acceptedTopics = () => (enabled() ? [...accepted.topics] : []);

/**
 * Turn notifications on; `progress(step)` hears 'permission', 'worker',
 * 'subscribing', 'registering'. Call straight from a click: browsers (Safari
 * always) prompt only during a user gesture. Rejects with a PushError.
 */
export async function enable(progress = () => {}) {
  if (busy) return;
  busy = true;
  try {
    const support_ = support();
    if (support_ !== 'ok') throw new PushError(support_);
    if (!toldOf().length) throw new PushError('nothing-followed');
    progress('permission');
    const permission = await within(Notification.requestPermission(), ANSWER_WITHIN, 'permission-timeout');
    if (permission === 'denied') throw new PushError('denied');
    if (permission !== 'granted') throw new PushError('dismissed');
    await register(progress);
  } finally {
    busy = false;
  }
}

export async function disable() {
  if (busy) return;
  busy = true;
  try {
    const endpoint = accepted?.endpoint;
    await remember(null); // off at once: whatever the server does next, this device asks for nothing
    const registration = await within(navigator.serviceWorker.ready, STEP_WITHIN, 'worker-timeout').catch(() => null);
    const subscription = await registration?.pushManager.getSubscription().catch(() => null);
    // The worker may have replaced the subscription since (pushsubscriptionchange): both go.
    for (const gone of new Set([endpoint, subscription?.endpoint].filter(Boolean))) {
      await within(request('DELETE', '/api/push/subscriptions', { body: { endpoint: gone } }), STEP_WITHIN, 'server-timeout').catch(() => {});
    }
    await subscription?.unsubscribe().catch(() => {});
  } finally {
    busy = false;
  }
}

/**
 * Post this device's subscription with the followed topics again: on every
 * start and whenever follows (or the enquiries waiting for an answer) change,
 * so a subscription the browser renewed, or a server that lost it, heals
 * itself. Nothing followed any more: the server forgets it and the switch
 * reads off. A refusal turns the switch off too.
 */
export async function sync() {
  await loaded;
  const confirming = wanted && support() === 'ok' && Notification.permission === 'granted';
  wanted = false;
  if (busy || !(enabled() || confirming)) return;
  busy = true;
  try {
    if (!toldOf().length) {
      if (!accepted) return;
      const { endpoint } = accepted;
      await remember(null);
      await request('DELETE', '/api/push/subscriptions', { body: { endpoint } }).catch(() => {});
      return;
    }
    await register();
  } catch (error) {
    // No answer: the record stays as the server last accepted it, tried again next start.
    if (!(error instanceof PushError && ['network', 'server-timeout', 'worker-timeout', 'service-unresolved'].includes(error.reason))) await remember(null);
    throw error;
  } finally {
    busy = false;
  }
}

async function register(progress = () => {}) {
  progress('worker');
  const registration = await within(navigator.serviceWorker.ready, STEP_WITHIN, 'worker-timeout');
  progress('subscribing');
  let subscription = await registration.pushManager.getSubscription().catch(() => null);
  if (!subscription) {
    const key = await server(request('GET', '/api/push/vapid-key'));
    try {
      subscription = await within(registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: fromBase64url(key.data.publicKey),
      }), STEP_WITHIN, 'push-service-timeout');
    } catch (error) {
      if (error instanceof PushError) throw error;
      // Chromium without its vendor's push service (common on phones sold in China) lands here.
      throw new PushError(error?.name === 'NotAllowedError' && Notification.permission !== 'granted' ? 'denied' : 'push-service', error);
    }
  }
  progress('registering');
  const json = subscription.toJSON();
  const topics = toldOf();
  let answer;
  try {
    answer = await server(request('POST', '/api/push/subscriptions', { body: { subscription: json, topics } }));
  } catch (error) {
    // Refused: this browser keeps no subscription the server does not know of.
    if (!['network', 'server-timeout', 'service-unresolved'].includes(error.reason)) await subscription.unsubscribe().catch(() => {});
    throw error;
  }
  await remember({ endpoint: json.endpoint, topics: answer.data?.topics ?? topics, at: new Date().toISOString() });
}

/** A request to our server, its failure as a PushError that says which kind. */
async function server(pending) {
  try {
    return await within(pending, STEP_WITHIN, 'server-timeout');
  } catch (error) {
    if (error instanceof PushError) throw error;
    if (error.status === 0) throw new PushError('network', error);
    // The server could not look up the push service's host: it may answer later.
    if (error.status === 503 && error.details?.field === 'subscription.endpoint') throw new PushError('service-unresolved', error);
    if (error.status === 503) throw new PushError('server-off', error);
    if (error.status === 429) throw new PushError('too-many', error);
    if (error.status === 422) throw new PushError('refused-service', error);
    throw new PushError('server-refused', error);
  }
}

function within(promise, ms, reason) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new PushError(reason)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

function fromBase64url(text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(text.length / 4) * 4, '=');
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

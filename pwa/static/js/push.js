// Web Push: turning notifications on and off, and keeping the server's copy of
// this device's subscription (endpoint + followed topics) current. The
// subscription is posted again on every start and whenever follows change, so
// a subscription the browser renewed, or a server that lost it, heals itself.
import { request } from './api.js';
import * as follows from './follows.js';

const FLAG = 'sunbid.push'; // 'on' once the person turned notifications on here, 'off' when off
const READY_WITHIN = 10_000;

export const isIOS = () =>
  /iPad|iPhone|iPod/.test(navigator.userAgent) || (navigator.platform === 'MacIntel' && navigator.maxTouchPoints > 1);
export const isStandalone = () =>
  matchMedia('(display-mode: standalone)').matches || navigator.standalone === true;

/** 'ok', 'ios-install' (iOS allows push only to Home Screen apps), 'unsupported' or 'denied'. */
export function support() {
  if (isIOS() && !isStandalone()) return 'ios-install';
  if (!('serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window)) return 'unsupported';
  return Notification.permission === 'denied' ? 'denied' : 'ok';
}

export const enabled = () =>
  localStorage.getItem(FLAG) === 'on' && support() === 'ok' && Notification.permission === 'granted';

/** Call straight from a click: browsers (Safari always) prompt only during a user gesture. */
export async function enable() {
  const permission = await Notification.requestPermission();
  if (permission !== 'granted') throw new Error(permission);
  localStorage.setItem(FLAG, 'on');
  await sync();
}

export async function disable() {
  localStorage.setItem(FLAG, 'off');
  const registration = await worker();
  const subscription = await registration.pushManager.getSubscription();
  if (!subscription) return;
  await request('DELETE', '/api/push/subscriptions', { body: { endpoint: subscription.endpoint } }).catch(() => {});
  await subscription.unsubscribe().catch(() => {});
}

/** Post this device's subscription with the followed topics (none followed: forget it server-side). */
export async function sync() {
  if (!enabled()) return;
  const registration = await worker();
  let subscription = await registration.pushManager.getSubscription();
  if (!subscription) {
    const { data } = await request('GET', '/api/push/vapid-key');
    subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: fromBase64url(data.publicKey),
    });
  }
  const json = subscription.toJSON();
  const topics = follows.list().slice(0, 64);
  if (!topics.length) {
    await request('DELETE', '/api/push/subscriptions', { body: { endpoint: json.endpoint } });
    return;
  }
  await request('POST', '/api/push/subscriptions', { body: { subscription: json, topics } });
}

function worker() {
  return Promise.race([
    navigator.serviceWorker.ready,
    new Promise((_, reject) => setTimeout(() => reject(new Error('no service worker')), READY_WITHIN)),
  ]);
}

function fromBase64url(text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(text.length / 4) * 4, '=');
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

// What this device follows: topic strings ("project:YW-GC-2026-0141",
// "category:construction", "agency:YW-GGZY", "region:330782") in
// localStorage 'sunbid.follows', mirrored to IndexedDB for the service worker.
import * as db from './db.js';

const KEY = 'sunbid.follows';
const TOPIC = /^(all|(project|agency|region):[A-Za-z0-9._-]{1,64}|category:[a-z_]{1,64})$/;
export const changes = new EventTarget();

export const isTopic = (topic) => TOPIC.test(topic);

function read() {
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) || '[]');
    return Array.isArray(stored) ? [...new Set(stored.filter((t) => typeof t === 'string' && isTopic(t)))] : [];
  } catch {
    return []; // hand-edited or damaged: start over rather than fail
  }
}

let topics = read();
db.put('follows', topics);

export const list = () => [...topics];
export const has = (topic) => topics.includes(topic);

export function set(topic, on) {
  if (!isTopic(topic) || has(topic) === on) return;
  topics = on ? [...topics, topic] : topics.filter((t) => t !== topic);
  localStorage.setItem(KEY, JSON.stringify(topics));
  db.put('follows', topics);
  changes.dispatchEvent(new Event('change'));
}

// Another tab followed or unfollowed something.
addEventListener('storage', (event) => {
  if (event.key !== KEY) return;
  topics = read();
  changes.dispatchEvent(new Event('change'));
});

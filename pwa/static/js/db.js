// The data last seen, kept in IndexedDB so that a reload without a network
// still shows the project list and every project visited. One key-value store:
// 'list:<query>', 'project:<id>', 'categories', 'directory', 'catalog', 'compliance',
// and 'follows' (which the service worker reads to re-subscribe to pushes).
// sw.js opens the same database with the same code; keep the two in step.

const NAME = 'sunbid';
const STORE = 'kv';
let opening = null;

function open() {
  opening ??= new Promise((resolve) => {
    // Private modes and old engines may refuse IndexedDB: the app then works, just not offline.
    if (!self.indexedDB) return resolve(null);
    const request = indexedDB.open(NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = request.onblocked = () => resolve(null);
  });
  return opening;
}

async function run(mode, action) {
  const db = await open();
  if (!db) return undefined;
  return new Promise((resolve) => {
    const tx = db.transaction(STORE, mode);
    const request = action(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(request.result);
    tx.onerror = tx.onabort = () => resolve(undefined);
  });
}

// Opened as soon as the app's code runs: a page drawn from what was kept waits for this first.
open();

export const get = (key) => run('readonly', (store) => store.get(key));
export const put = (key, value) => run('readwrite', (store) => store.put(value, key));

/** Every kept [key, value] whose key starts with `prefix` (what can be shown offline). */
export async function entries(prefix) {
  const range = IDBKeyRange.bound(prefix, `${prefix}\uffff`);
  const [keys, values] = await Promise.all([
    run('readonly', (store) => store.getAllKeys(range)),
    run('readonly', (store) => store.getAll(range)),
  ]);
  return (keys ?? []).map((key, i) => [key, values?.[i]]);
}

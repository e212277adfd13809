// Client-side routing over the one app shell the server serves for every page.
// A view is `render(main, ctx)`, resolving once its first render is done;
// `ctx.signal` aborts when the reader leaves and `ctx.onLeave(fn)` cleans up.

const ROUTES = [
  [/^\/$/, 'list'],
  [/^\/p\/([^/]+)$/, 'project'],
  [/^\/follows$/, 'follows'],
  [/^\/mine$/, 'mine'],
  [/^\/request$/, 'request'],
  [/^\/catalog$/, 'catalog'],
  [/^\/stats$/, 'stats'],
  [/^\/staff$/, 'staff'],
];

let views = {};
let main = null;
let leave = () => {};
let rendered = false;
let full = false; // a new version of the app is installed: load pages in full from now on

/** From now on, page changes load the whole app again. */
export const loadFully = () => {
  full = true;
};

export function match(path) {
  for (const [pattern, name] of ROUTES) {
    const found = pattern.exec(path);
    if (found) return { name, params: found.slice(1).map(decodeURIComponent) };
  }
  return null;
}

/** Show the page for the current URL; resolves when it is rendered. */
async function show({ keepScroll = false } = {}) {
  leave();
  const controller = new AbortController();
  const cleanups = [];
  leave = () => {
    controller.abort();
    cleanups.splice(0).forEach((fn) => fn());
  };
  const route = match(location.pathname) ?? { name: 'missing', params: [] };
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === route.name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const scroll = scrollY;
  const ctx = {
    params: route.params,
    query: new URLSearchParams(location.search),
    signal: controller.signal,
    onLeave: (fn) => cleanups.push(fn),
  };
  await views[route.name](main, ctx);
  if (controller.signal.aborted) return;
  const heading = main.querySelector('h1');
  document.title = heading ? `${heading.textContent} · 阳光交易` : '阳光交易';
  // A part of the page named in the address (/follows#other-ways): drawn only now, so
  // the browser could not have scrolled to it itself; shown, and focused when it takes focus.
  const part = keepScroll ? null : namedPart();
  if (keepScroll) scrollTo(0, scroll);
  else if (part) {
    part.scrollIntoView();
    if (part.hasAttribute('tabindex')) part.focus({ preventScroll: true });
  }
  // After a navigation (not the first load), take screen readers to the new page's heading.
  else if (rendered) heading?.focus({ preventScroll: true });
  rendered = true;
}

/** The element the address's fragment names, if the page has one. */
function namedPart() {
  try {
    return location.hash.length > 1 ? document.getElementById(decodeURIComponent(location.hash.slice(1))) : null;
  } catch {
    return null; // a malformed %-escape: nothing to show
  }
}

export function navigate(url, { replace = false } = {}) {
  if (full) return location.assign(url);
  history[replace ? 'replaceState' : 'pushState'](null, '', url);
  scrollTo(0, 0);
  return show();
}

/** Render the current page again (the language changed). */
export const refresh = () => show({ keepScroll: true });

export function start(root, table) {
  main = root;
  views = table;
  addEventListener('popstate', () => (full ? location.reload() : show()));
  document.addEventListener('click', (event) => {
    const link = event.target.closest?.('a[href]');
    if (
      !link || event.defaultPrevented || event.button !== 0 ||
      event.metaKey || event.ctrlKey || event.shiftKey || event.altKey ||
      link.target || link.hasAttribute('download') || link.origin !== location.origin
    ) return;
    if (link.pathname === location.pathname && link.hash) return; // an anchor on this page
    if (!match(link.pathname)) return; // the API, the OpenAPI document …: the browser's business
    event.preventDefault();
    navigate(link.pathname + link.search + link.hash);
  });
  return show();
}

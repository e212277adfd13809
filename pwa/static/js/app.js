// The app's entry: language, the live connection, the pages, the service
// worker, and notifications kept in step with what this device follows and
// the enquiries it waits on.
import { L, current, locale, setLang } from './i18n.js';
import { h, $, toast, updateBanner, showingCopy, isShowingCopy, failure } from './ui.js';
import { start, refresh, match, loadFully } from './router.js';
import { live } from './live.js';
import { loadVocab, stageName } from './vocab.js';
import * as api from './api.js';
import * as follows from './follows.js';
import * as cases from './cases.js';
import * as push from './push.js';
import './textsize.js'; // the large-text mode, on before the first page shows

// Tests (and anything else) can wait for the render of the current page:
// `ready` is a new promise for each page the app shows.
let rendered;
window.sunbid = { ready: new Promise((resolve) => { rendered = resolve; }) };

// Each page's code is loaded when it is first visited: a first visit fetches
// only what its page needs. The shell's `Link` header (server/api/pages.py)
// has the browser fetch the first page's module alongside app.js.
const lazy = (load) => {
  let module = null;
  const view = async (main, ctx) => (await view.preload()).default(main, ctx);
  view.preload = () => (module ??= load());
  return view;
};
const list = lazy(() => import('./views/list.js'));
const project = lazy(() => import('./views/project.js'));
const followsPage = lazy(() => import('./views/follows.js'));
const catalog = lazy(() => import('./views/catalog.js'));
const statsPage = lazy(() => import('./views/stats.js'));
const staff = lazy(() => import('./views/staff.js'));
const mine = lazy(() => import('./views/mine.js'));
const disclosure = lazy(() => import('./views/request.js'));
const missing = async (main) => {
  main.replaceChildren(h('h1', { tabindex: -1 }, L('找不到这个页面', 'Page not found')),
    h('p', null, h('a', { href: '/' }, L('回到项目列表', 'Back to the projects'))));
};
// Each page says itself whether it shows a kept copy; a new page starts without the banner.
// A page that fails outright (its code could not even be loaded) still says so.
const fresh = (view) => async (main, ctx) => {
  let shown;
  const ready = new Promise((resolve) => { shown = resolve; });
  if (rendered === null) window.sunbid.ready = ready; // the first page keeps the first promise
  showingCopy(null);
  toast();
  // Drawn first from what this device kept, if anything; then checked against
  // the server, and drawn again only if the server's answer differs.
  const quickly = api.answerQuickly();
  try {
    await view(main, ctx);
    const served = api.servedQuickly(quickly);
    if (served.length && !ctx.signal.aborted && (await api.stillFresh(served)) !== 'same' && !ctx.signal.aborted) await refresh();
  } catch (error) {
    if (!ctx.signal.aborted) main.replaceChildren(h('h1', { tabindex: -1 }, L('页面没能打开', 'The page could not open')), failure(error, () => location.reload()));
  } finally {
    api.forgetChecked(api.servedQuickly(quickly));
    shown();
  }
};
const PAGES = { list, project, follows: followsPage, mine, request: disclosure, catalog, stats: statsPage, staff };
const VIEWS = Object.fromEntries(Object.entries({ ...PAGES, missing })
  .map(([name, view]) => [name, fresh(view)]));

function labelChrome() {
  const lang = $('[data-testid=lang]');
  lang.textContent = L('English', '中文');
  lang.lang = L('en', 'zh-CN');
  lang.setAttribute('aria-label', L('Switch to English', '切换到中文'));
  $('.skip').textContent = L('跳到正文', 'Skip to content');
  $('nav.tabs').setAttribute('aria-label', L('主导航', 'Main'));
  const names = { list: L('项目', 'Projects'), follows: L('我的关注', 'Following'), mine: L('我的咨询', 'Asked'), catalog: L('公开目录', 'Catalogue'), stats: L('统计', 'Statistics'), staff: L('工作人员', 'Staff') };
  for (const link of document.querySelectorAll('[data-nav]')) link.textContent = names[link.dataset.nav];
  showLive(live.state());
  updateBanner();
}

// data-state is exact at every moment; the words change a little later when
// leaving 'live', so subscribing to one more topic does not make them flicker.
let wording = 0;
function showLive(state) {
  const box = $('[data-testid=live-status]');
  box.dataset.state = state;
  clearTimeout(wording);
  const words = () => {
    box.querySelector('.live-text').textContent = { live: L('实时', 'Live'), connecting: L('连接中', 'Connecting'), offline: L('离线', 'Offline') }[state];
    box.title = { live: L('实时更新已连接', 'Live updates on'), connecting: L('正在连接实时更新', 'Connecting live updates'), offline: L('未连接：恢复网络后自动重连', 'Not connected: reconnects when the network is back') }[state];
  };
  if (state === 'live' || !box.title) words();
  else wording = setTimeout(words, 400);
}

$('[data-testid=lang]').addEventListener('click', async () => {
  setLang(current() === 'zh' ? 'en' : 'zh');
  labelChrome();
  await refresh();
  document.documentElement.lang = locale();
});

// Whether this device follows something an event is published on.
const followed = (event) => ['all', `project:${event.project}`, `category:${event.category}`, `agency:${event.agency}`, `region:${event.region}`]
  .some((topic) => follows.has(topic));

// Events of followed topics while another page is on screen: one line at the
// bottom (the project page announces its own).
live.on('event', (event) => {
  const answered = cases.heard(event); // an answer to this device's own question: kept at once
  const route = match(location.pathname);
  if (route?.name === 'project' && route.params[0] === event.project) return;
  // 我的咨询 follows the projects asked about only for their answers.
  if (route?.name === 'mine' && !answered && !followed(event)) return;
  if (answered) return toast(h('a', { href: '/mine' }, L('您的咨询有答复了，点此查看。', 'Your question has been answered: see it.')));
  toast(h('a', { href: `/p/${encodeURIComponent(event.project)}` }, L('关注的项目有新进展：', 'Update: ') + `【${stageName(event.stage)}】${event.title}`));
});
live.on('status', (state) => {
  showLive(state);
  // Back online while showing a saved copy: fetch the page again, in place.
  if (state === 'live' && isShowingCopy()) refresh();
});
addEventListener('online', updateBanner);
addEventListener('offline', updateBanner);
follows.changes.addEventListener('change', () => push.sync().catch(() => {}));
// An enquiry asked or answered changes what this device is told of; a case merely checked does not.
let waitingOn = cases.topics().join();
cases.changes.addEventListener('change', () => {
  if (cases.topics().join() === waitingOn) return;
  waitingOn = cases.topics().join();
  push.sync().catch(() => {});
});

labelChrome();
live.start();
// The first page's code is fetched meanwhile (from the worker's cache, once installed).
PAGES[match(location.pathname)?.name]?.preload().catch(() => {});
// The vocabulary kept on this device, if any, at once; checked in the background.
const quickly = api.answerQuickly();
try {
  await loadVocab();
} catch {
  // no network and nothing kept: the pages say so in their own words
} finally {
  const served = api.servedQuickly(quickly);
  if (served.length) {
    api.stillFresh(served).then(async (verdict) => {
      if (verdict !== 'changed') return api.forgetChecked(served);
      await loadVocab({ again: true }).catch(() => {});
      api.forgetChecked(served);
      await window.sunbid.ready;
      refresh(); // the page again, in the new words
    });
  }
}
await start($('#main'), VIEWS);
rendered();
rendered = null; // from now on each page replaces `window.sunbid.ready`
// Questions answered (or declined) while the app was closed stop being waited on
// (我的咨询 checks every case itself).
if (match(location.pathname)?.name !== 'mine') cases.recheck();

if ('serviceWorker' in navigator) {
  // A new version took over (not the first worker claiming this page): this
  // page's modules are the old ones, so the next page change loads in full.
  let controlled = Boolean(navigator.serviceWorker.controller);
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    if (controlled) loadFully();
    controlled = true;
  });
  // A push the worker showed while this page is open: an answer to this device's own
  // question is checked with its ticket at once (the push may carry the event shortened).
  navigator.serviceWorker.addEventListener('message', ({ data }) => {
    if (data?.type === 'push' && data.event?.stage === 'enquiry_answer') cases.recheck(data.event.project);
  });
  navigator.serviceWorker.register('/sw.js', { scope: '/' })
    // Re-sync on every start: the server may have dropped the subscription, or the browser renewed it.
    .then(() => push.sync())
    .catch(() => {});
}

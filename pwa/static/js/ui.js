// Small DOM and formatting helpers the views share.
import { L, locale, current } from './i18n.js';
import * as db from './db.js';
import { categoryName, stageName, agencyName, regionName } from './vocab.js';

/** h('a', {href: '/'}, 'text', child…): an element; null, false and undefined children are skipped. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value == null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  el.append(...children.flat(Infinity).filter((c) => c != null && c !== false));
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

// --- times -----------------------------------------------------------------------

// Times arrive as RFC 3339 in the server's zone, Beijing time for statutory
// periods. They are shown as written there, not converted to the phone's zone,
// so a deadline reads exactly as on the paper notice.
export const when = (text) => (text ? `${text.slice(0, 10)} ${text.slice(11, 16)}` : '');

/** A deadline's moment; the last instant of a day reads 24:00, as notices write it. */
export const dueTime = (text) => (text.slice(11, 19) === '23:59:59' ? `${text.slice(0, 10)} 24:00` : when(text));

/** A Date; extra fraction digits (…59.999999) are cut, which not every engine parses. */
export const parseTime = (text) => new Date(text.replace(/(\.\d{3})\d+/, '$1'));

/** "2 天 5 小时" / "2 days 5 h": how long `ms` is, roughly, for a countdown. */
export function span(ms) {
  const minutes = Math.max(1, Math.round(Math.abs(ms) / 60000));
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  if (days) return L(`${days} 天${hours ? ` ${hours} 小时` : ''}`, `${days} d${hours ? ` ${hours} h` : ''}`);
  if (hours) return L(`${hours} 小时 ${minutes % 60} 分`, `${hours} h ${minutes % 60} min`);
  return L(`${minutes} 分钟`, `${minutes} min`);
}

// --- numbers ---------------------------------------------------------------------

export function money(amount, currency = 'CNY') {
  if (typeof amount !== 'number') return '';
  if (current() === 'zh' && currency === 'CNY') {
    const format = new Intl.NumberFormat('zh-CN', { maximumFractionDigits: 2 });
    return amount >= 1e4 ? `${format.format(amount / 1e4)} 万元` : `${format.format(amount)} 元`;
  }
  return new Intl.NumberFormat(locale(), {
    style: 'currency',
    currency,
    notation: amount >= 1e6 ? 'compact' : 'standard',
    maximumFractionDigits: amount >= 1e6 ? 2 : 0,
  }).format(amount);
}

/** To the cent, with the currency's sign (¥1,200,000.00): for a figure someone changed on record. */
export function exactMoney(amount, currency = 'CNY') {
  if (typeof amount !== 'number') return '';
  return new Intl.NumberFormat(locale(), { style: 'currency', currency, minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(amount);
}

export const number = (value) => new Intl.NumberFormat(locale()).format(value);

// --- things every page shares ----------------------------------------------------

/**
 * Change the page without moving what the reader looks at. Chrome and
 * Firefox anchor scrolling themselves; Safari does not, so the element at the
 * top of the view is measured before and after and the difference scrolled.
 */
export function keepInPlace(change) {
  const anchor = document.elementFromPoint(innerWidth / 2, Math.min(120, innerHeight / 3));
  const before = anchor?.getBoundingClientRect().top;
  change();
  if (anchor?.isConnected && scrollY > 0) {
    const moved = anchor.getBoundingClientRect().top - before;
    if (moved) scrollBy(0, moved);
  }
}

let toastTimer = 0;
/** A short message at the bottom (fixed: nothing else moves), read out by screen readers. */
export function toast(...content) {
  clearTimeout(toastTimer);
  // A new box each time: an element that appears is not a layout shift, one that grows is.
  $('#toast').replaceChildren(...(content.length ? [h('div', { class: 'toast-box' }, ...content)] : []));
  if (content.length) toastTimer = setTimeout(() => toast(), 8000);
}

// The offline banner shows when the page shows a kept copy or the device is offline.
let keptAt = null;
export function showingCopy(at) {
  keptAt = at;
  updateBanner();
}
export const isShowingCopy = () => keptAt !== null;
export function updateBanner() {
  const banner = $('[data-testid=offline]');
  banner.hidden = !(keptAt || navigator.onLine === false);
  // When the copy was saved, in the phone's own clock: that is the reader's frame here.
  const date = new Date(keptAt);
  const saved = Number.isNaN(date.getTime())
    ? L('之前', 'earlier')
    : date.toLocaleString(locale(), { dateStyle: 'short', timeStyle: 'short' });
  banner.textContent = keptAt
    ? L(`离线 · 数据截至 ${saved}`, `Offline · data as of ${saved}`)
    : L('网络已断开，恢复后会自动更新。', 'You are offline; the page updates when the network is back.');
}

/** A plain sentence for a failed request, for people, not programmers. */
export function problem(error) {
  if (typeof error?.status !== 'number') return L('出了点问题，请稍后再试。', 'Something went wrong; try again later.');
  if (error.status === 0) {
    return L('连不上服务器。请检查网络后再试。', 'Cannot reach the server. Check the network and try again.');
  }
  if (error.status === 404) return L('没有找到。可能编号有误，或已被删除。', 'Not found. The code may be wrong.');
  if (error.status === 429) {
    return L(`操作太频繁，请 ${error.retryAfter || '几'} 秒后再试。`, `Too many requests; try again in ${error.retryAfter || 'a few'} s.`);
  }
  if (error.status >= 500) return L('服务器暂时出了问题，请稍后再试。', 'The server has a problem right now; try again later.');
  return L('服务器拒绝了这个请求：', 'The server refused this: ') + error.message;
}

/**
 * The block a page shows instead of its content when it has nothing to show.
 * Without a network, it says what can be seen instead: what this device kept.
 */
export function failure(error, retry) {
  const box = h('div', { class: 'notice', role: 'alert' },
    h('p', null, problem(error)),
    retry && h('button', { type: 'button', onclick: retry }, L('重试', 'Try again')));
  if (error?.status === 0) box.append(keptPages());
  return box;
}

const KEPT_PROJECTS_SHOWN = 30;
// A kept list's filters by name (the list's URL holds codes); anything else as written.
const FILTER_NAMES = { category: categoryName, stage: stageName, agency: agencyName, region: regionName };
const quoted = (value) => `“${value}”`;

/** 「离线时只能查看…」 and links to the lists and projects kept on this device, newest first. */
function keptPages() {
  const links = h('ul', { class: 'kept', 'data-testid': 'kept-pages' });
  const section = h('div', { 'data-testid': 'offline-help' },
    h('p', null, L('离线时只能查看之前打开过的项目和列表。', 'Offline, only the projects and lists opened before can be seen.')),
    links);
  Promise.all([db.entries('list:'), db.entries('project:')]).then(([lists, projects]) => {
    const item = (href, text) => h('li', null, h('a', { href }, text));
    const newest = (a, b) => String(b[1]?.at).localeCompare(String(a[1]?.at));
    const items = [
      ...lists.sort(newest).map(([key]) => {
        const query = new URLSearchParams(key.slice('list:'.length));
        query.delete('limit');
        const filters = [...query].map(([name, value]) => (FILTER_NAMES[name] ?? quoted)(value)).join(' · ');
        return item(query.toString() ? `/?${query}` : '/', filters ? L(`项目列表（${filters}）`, `Projects (${filters})`) : L('全部项目', 'All projects'));
      }),
      ...projects.sort(newest).slice(0, KEPT_PROJECTS_SHOWN)
        .map(([key, kept]) => item(`/p/${encodeURIComponent(key.slice('project:'.length))}`, kept?.data?.title || key.slice('project:'.length))),
    ];
    if (items.length) links.replaceChildren(...items);
    else links.replaceWith(h('p', { class: 'muted' }, L('这台设备上还没有保存任何内容。', 'Nothing has been kept on this device yet.')));
  });
  return section;
}

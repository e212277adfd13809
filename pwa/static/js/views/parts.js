// Pieces several pages show: follow toggles, topic names, the notification switch,
// legal citations, and an event's facts exactly as published.
import { h } from '../ui.js';
import { L, current } from '../i18n.js';
import { categoryName, agencyName, regionName, fieldOf, dataLabel, fieldUnit, stageName } from '../vocab.js';
import * as follows from '../follows.js';

/** [kind, value, href] of a topic, for people. */
export function describeTopic(topic) {
  const [kind, value] = topic.split(/:(.*)/s);
  switch (kind) {
    case 'project': return [L('项目', 'Project'), value, `/p/${encodeURIComponent(value)}`];
    case 'category': return [L('类别', 'Category'), categoryName(value), `/?category=${value}`];
    case 'agency': return [L('机构', 'Agency'), agencyName(value), `/?agency=${encodeURIComponent(value)}`];
    case 'region': return [L('地区', 'Region'), regionName(value), `/?region=${encodeURIComponent(value)}`];
    default: return [L('全部', 'Everything'), '', '/'];
  }
}

/**
 * A toggle button following `topic`. Its name stays the same and `aria-pressed`
 * carries the state, as screen readers expect of a toggle; the look shows it too.
 */
export function followToggle(topic, label, attrs = {}) {
  const button = h('button', { type: 'button', class: 'toggle', ...attrs }, label);
  // Once followed it says so in words (已关注…), not only by its look.
  const followed = label.replace(/^关注/, '已关注').replace(/^Follow\b/, 'Following');
  const update = () => {
    if (!button.isConnected && button.dataset.shown) return follows.changes.removeEventListener('change', update);
    const on = follows.has(topic);
    button.setAttribute('aria-pressed', String(on));
    button.textContent = on ? followed : label;
  };
  button.addEventListener('click', () => follows.set(topic, !follows.has(topic)));
  follows.changes.addEventListener('change', update);
  update();
  button.dataset.shown = '1';
  return button;
}

// The notification switch lives in its own module.
export { pushControl } from './pushswitch.js';

// --- feeds and calendars -------------------------------------------------------------------

/**
 * 「RSS」 and 「订阅到日历」 for what a page shows (docs/feeds.md). A subscription, not a copy:
 * webcal:// opens the calendar's own "subscribe" dialog on iPhone, iPad and Mac (and in
 * Outlook), which re-reads the calendar as deadlines move; Android has no webcal handler
 * (Chrome calls it an unknown scheme), so there the link adds the same URL to Google
 * Calendar, which the phone's calendar syncs. The .ics link beside it imports once anywhere
 * and is the address to paste into any other calendar.
 */
export function subscribeLinks({ feed, calendar }) {
  const links = [];
  if (feed) links.push(h('a', { href: feed, type: 'application/atom+xml', 'data-testid': 'rss-link' }, 'RSS'));
  if (calendar) {
    const webcal = new URL(calendar, location.origin).href.replace(/^https?:/, 'webcal:');
    const subscribe = /Android/i.test(navigator.userAgent)
      ? `https://calendar.google.com/calendar/r?cid=${encodeURIComponent(webcal)}`
      : webcal;
    links.push(
      h('a', { href: subscribe, 'data-testid': 'calendar-link' }, L('订阅到日历', 'Add to calendar')),
      h('a', { href: calendar, type: 'text/calendar', download: '', 'data-testid': 'ics-link' }, L('日历文件 (.ics)', 'Calendar file (.ics)')),
    );
  }
  return h('p', { class: 'subscribe', 'data-testid': 'subscribe' }, ...links);
}

// --- citations -----------------------------------------------------------------------------

const DIGITS = '零一二三四五六七八九';
/** 24 → 二十四, 105 → 一百零五: article numbers as the statute books write them. */
export function chineseNumber(n) {
  if (n < 10) return DIGITS[n];
  if (n < 20) return `十${n % 10 ? DIGITS[n % 10] : ''}`;
  if (n < 100) return `${DIGITS[Math.floor(n / 10)]}十${n % 10 ? DIGITS[n % 10] : ''}`;
  if (n < 1000) {
    const rest = n % 100;
    return `${DIGITS[Math.floor(n / 100)]}百${rest ? (rest < 10 ? `零${DIGITS[rest]}` : rest < 20 ? `一${chineseNumber(rest)}` : chineseNumber(rest)) : ''}`;
  }
  return String(n);
}

/** A legal basis as readers know it: 招标投标法 第二十四条 (Art. 24 in English), never §24. */
export const citation = (basis) => String(basis ?? '').replace(/§\s*(\d+)/g, (_, n) =>
  current() === 'zh' ? `第${chineseNumber(Number(n))}条` : `Art. ${n}`);

// --- facts, exactly as published ---------------------------------------------------------

const ISO_TIME = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)/;
const ISO_DATE = /^(\d{4})-(\d\d)-(\d\d)$/;
const PLAIN_NUMBER = /^-?\d+(\.\d+)?$/;
// Before the vocabulary describes a key: money is told by its name.
const MONEY = /(price|amount|bond|deposit|budget|fine|paid|increment)/;

/** A moment as notices write it, in the zone it was published in: 2026年12月18日 09:30 (24:00 at a day's end). */
export function dateTime(text) {
  const m = ISO_TIME.exec(text ?? '');
  if (!m) return text ?? '';
  const time = text.slice(11, 19) === '23:59:59' ? '24:00' : `${m[4]}:${m[5]}`;
  return current() === 'zh' ? `${m[1]}年${Number(m[2])}月${Number(m[3])}日 ${time}` : `${m[1]}-${m[2]}-${m[3]} ${time}`;
}
/** The same, without the year when it is this year's: 12月18日 09:30 (for the list's cards). */
export function shortDateTime(text) {
  const full = dateTime(text);
  const year = `${new Date().getFullYear()}`;
  return text?.startsWith(year) ? full.slice(5) : full;
}
function dateOnly(text) {
  const m = ISO_DATE.exec(text ?? '') ?? ISO_TIME.exec(text ?? '');
  if (!m) return text ?? '';
  return current() === 'zh' ? `${m[1]}年${Number(m[2])}月${Number(m[3])}日` : `${m[1]}-${m[2]}-${m[3]}`;
}

/**
 * A number exactly as published: its shortest exact decimal form (0.0935 stays
 * 0.0935), the integer part grouped by thousands. Never rounded.
 */
export function exactNumber(value) {
  const text = String(value);
  if (!PLAIN_NUMBER.test(text)) return text; // 1e+21 and the like: as the number itself reads
  const [whole, fraction] = text.split('.');
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return fraction ? `${grouped}.${fraction}` : grouped;
}

/** A fraction as a percentage, shifting the decimal point (0.35 → 35, no floating-point product). */
function percentOf(value) {
  const text = String(value);
  if (!PLAIN_NUMBER.test(text)) return text;
  const sign = text.startsWith('-') ? '-' : '';
  const [whole, fraction = ''] = text.replace('-', '').split('.');
  const digits = whole + fraction.padEnd(2, '0');
  const point = whole.length + 2;
  const rest = digits.slice(point);
  return `${sign}${digits.slice(0, point).replace(/^0+(?=\d)/, '')}${rest ? `.${rest}` : ''}`;
}

/**
 * A budget the way people say it, and still exact: 1285 万元, 1,158.6 万元 (the
 * decimal point moved, never rounded); below 1 万 or in another currency, in full.
 */
export function budgetText(value, currency = 'CNY') {
  const text = String(value);
  if (typeof value !== 'number' || !PLAIN_NUMBER.test(text)) return text;
  if (current() !== 'zh' || (currency && currency !== 'CNY') || Math.abs(value) < 1e4) return money(value, currency);
  const [whole, fraction = ''] = text.replace('-', '').split('.');
  const digits = whole + fraction;
  const point = whole.length - 4;
  const rest = digits.slice(point).replace(/0+$/, '');
  return `${value < 0 ? '-' : ''}${exactNumber(digits.slice(0, point))}${rest ? `.${rest}` : ''} 万元`;
}

/** An amount of money: a number with its currency, to the last digit; a text (1285万元) as written. */
function amount(value, currency = 'CNY') {
  if (typeof value === 'number') return money(value, currency);
  const text = String(value);
  return PLAIN_NUMBER.test(text) ? money(text, currency) : text;
}
function money(value, currency) {
  const figure = exactNumber(value);
  if (currency === 'CNY' || !currency) return L(`${figure} 元`, `CNY ${figure}`);
  return `${figure} ${currency}`;
}

function withUnit(text, key) {
  const unit = fieldUnit(key);
  return unit ? `${text} ${unit}` : text;
}

/**
 * One fact's value in words, by the kind the vocabulary gives its key (guessed
 * from the value when the key is unknown). `ctx` = {currency, link(seq)}.
 */
export function factValue(key, value, ctx = {}) {
  if (value == null || value === '') return '—';
  const info = fieldOf(key);
  const kind = info?.kind ?? guessKind(key, value);
  switch (kind) {
    case 'datetime': return typeof value === 'string' ? dateTime(value) : String(value);
    case 'date': return typeof value === 'string' ? dateOnly(value) : String(value);
    case 'amount': return amount(value, ctx.currency);
    case 'percent': {
      if (typeof value !== 'number') return String(value);
      return `${percentOf(value)}%`;
    }
    case 'number':
    case 'integer': return typeof value === 'number' ? withUnit(exactNumber(value), key) : withUnit(String(value), key);
    case 'boolean': return typeof value === 'boolean' ? (value ? L('是', 'yes') : L('否', 'no')) : String(value);
    case 'event': return ctx.link && Number.isInteger(value) ? ctx.link(value) : String(value);
    case 'list': return Array.isArray(value) ? listOf(key, value, ctx) : String(value);
    default: return typeof value === 'object' ? objectOf(value, ctx) : withUnit(String(value), key);
  }
}

function guessKind(key, value) {
  if (typeof value === 'boolean') return 'boolean';
  if (Array.isArray(value)) return 'list';
  if (typeof value === 'number') return MONEY.test(key) ? 'amount' : 'number';
  if (typeof value === 'string' && ISO_TIME.test(value)) return 'datetime';
  return 'text';
}

function listOf(key, items, ctx) {
  return h('ol', { class: 'plain list' }, items.map((item) => h('li', null,
    item && typeof item === 'object' && !Array.isArray(item) ? objectOf(item, ctx) : factValue(`${key}`, item, { ...ctx, inList: true }))));
}

/** An entry of a list (a candidate, a pollutant's quota): its name first, then each named fact. */
function objectOf(item, ctx) {
  const parts = [];
  for (const [k, v] of Object.entries(item)) {
    if (k === 'rank') continue; // the list's own order says it
    if (k === 'name') parts.unshift(h('span', { class: 'item-name' }, String(v)));
    else parts.push(h('span', { class: 'item-fact' }, h('span', { class: 'muted' }, `${dataLabel(k)} `), factValue(k, v, ctx)));
  }
  return parts.flatMap((part, i) => (i ? [' · ', part] : [part]));
}

/**
 * An event's facts as a definition list: the stage's own fields first, in the
 * vocabulary's order, then any other key under its raw name (never dropped).
 */
export function factList(data, { order = [], skip = [], ...ctx } = {}) {
  const keys = Object.keys(data ?? {}).filter((key) => !skip.includes(key));
  if (!keys.length) return null;
  const rank = (key) => (order.includes(key) ? order.indexOf(key) : order.length);
  keys.sort((a, b) => rank(a) - rank(b));
  return h('dl', { class: 'data', 'data-testid': 'facts' }, keys.map((key) => [
    h('dt', { 'data-field': key }, fieldOf(key) ? dataLabel(key) : h('code', null, key)),
    h('dd', { 'data-field': key }, factValue(ctx.as?.[key] ?? key, data[key], ctx)),
  ]));
}

/** A link to another step of the same project's timeline: #4 【采购公告】. */
export function stepLink(seq, timeline = [], category) {
  const event = timeline.find((e) => e.seq === seq);
  return h('a', { href: `#e${seq}`, class: 'ref' },
    L(`第 ${seq} 号信息`, `#${seq}`), event ? ` 【${stageName(event.stage, category)}】` : '');
}

// `/p/{id}`: one transaction's whole process — what happened (the timeline),
// the open statutory deadlines, what comes next — kept live over the WebSocket.
import { h, $, when, dueTime, money, exactMoney, number, parseTime, span, keepInPlace, showingCopy, failure, toast } from '../ui.js';
import { L } from '../i18n.js';
import { load } from '../api.js';
import * as db from '../db.js';
import { categoryName, stageName, isOversight, isRecord, movesStage, isOptional, lifecycle, dataLabel, agencyName, regionName } from '../vocab.js';
import { live } from '../live.js';
import * as follows from '../follows.js';
import { followToggle, pushControl } from './parts.js';

const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d/;
const MONEY = /(price|amount|bond|deposit|budget|fine|paid|increment)/;
// The project's own fields, as registered and amended, in the order they are listed.
const FIELDS = ['title', 'budget', 'currency', 'region', 'must_tender'];
const CONFIDENCE = {
  statute: ['依据法规原文', 'from the statute text'],
  secondary: ['依据二手资料', 'from a secondary source'],
  memory: ['依据待核实', 'basis to be verified'],
};

export default async function project(main, ctx) {
  const id = ctx.params[0];
  const topic = `project:${id}`;
  let shown = null; // the project as on screen
  const early = []; // live events that came before the first render
  let refreshing = 0;

  live.setPageTopics([topic]);
  ctx.onLeave(() => live.setPageTopics([]));
  ctx.onLeave(live.on('event', (event) => {
    if (event.project !== id) return;
    if (shown) arrive(event);
    else early.push(event);
  }));
  // After a reconnect (or when the page shows a kept copy) ask again: the
  // replay brings missed events, this brings the deadlines up to date.
  ctx.onLeave(live.on('ready', (count) => shown && (count > 1 || shown.copy) && refresh()));

  let answer;
  try {
    answer = await load(`/api/projects/${encodeURIComponent(id)}`, `project:${id}`);
  } catch (error) {
    if (ctx.signal.aborted) return;
    showingCopy(null);
    main.replaceChildren(h('h1', { tabindex: -1 }, L('项目', 'Project') + ` ${id}`), failure(error, () => project(main, ctx)));
    return;
  }
  if (ctx.signal.aborted) return;
  shown = { ...answer.data, copy: Boolean(answer.cached) };
  showingCopy(answer.cached);
  render();
  early.splice(0).forEach(arrive);

  const tick = setInterval(() => main.querySelectorAll('[data-at]').forEach(countdown), 30_000);
  ctx.onLeave(() => clearInterval(tick));

  function render() {
    const p = shown;
    main.replaceChildren(
      h('p', { class: 'crumbs' }, h('a', { href: '/' }, L('← 全部项目', '← All projects'))),
      h('h1', { tabindex: -1, id: 'project-title' }, p.title),
      // The stage has a line of its own, so a longer stage name arriving live moves nothing.
      h('p', { class: 'meta' }, h('span', { class: 'stage', id: 'current-stage' }, stageName(p.stage)), h('br'), categoryName(p.category)),
      h('dl', { class: 'facts', id: 'facts', 'data-testid': 'project-facts' }, factItems()),
      h('div', { class: 'actions' },
        followToggle(topic, L('关注此项目', 'Follow this project'), { 'data-testid': 'follow' }),
        // Asking to be notified about this project implies following it.
        pushControl({ before: () => follows.set(topic, true) })),
      h('div', { class: 'chips', id: 'chips', role: 'group', 'aria-label': L('也可以关注', 'Also follow') }, chipItems()),
      h('section', { 'aria-labelledby': 'h-deadlines' },
        h('h2', { id: 'h-deadlines' }, L('法定时限', 'Statutory deadlines')),
        h('ul', { class: 'deadlines', 'data-testid': 'deadlines' }, deadlineItems())),
      h('section', { 'aria-labelledby': 'h-timeline' },
        h('h2', { id: 'h-timeline' }, L('全过程', 'The whole process')),
        h('ol', { class: 'timeline', 'data-testid': 'timeline' }, p.timeline.map((e) => eventItem(e, false, p))),
        h('h3', { class: 'next-title' }, L('接下来', 'What comes next')),
        h('ol', { class: 'timeline next', id: 'next' }, nextItems())),
    );
    markCurrent();
    markCorrected();
    main.querySelectorAll('[data-at]').forEach(countdown);
  }

  function factItems() {
    const p = shown;
    return [
      fact(L('项目编号', 'Code'), p.id),
      fact(L('发布机构', 'Agency'), place(agencyName, p.agency)),
      p.region && fact(L('地区', 'Region'), place(regionName, p.region)),
      p.budget != null && fact(L('预算', 'Budget'), h('span', { 'data-testid': 'budget' }, money(p.budget, p.currency))),
      p.must_tender != null && fact(L('依法必须招标', 'Tender required by law'), p.must_tender ? L('是', 'yes') : L('否', 'no')),
      fact(L('最近动态', 'Latest activity'), h('span', { id: 'updated' }, when(p.updated_at))),
    ];
  }

  function chipItems() {
    const p = shown;
    return [
      followToggle(`category:${p.category}`, L('关注此类别', 'Follow category'), { 'data-testid': 'follow-topic' }),
      followToggle(`agency:${p.agency}`, L('关注此机构', 'Follow agency'), { 'data-testid': 'follow-topic' }),
      p.region && followToggle(`region:${p.region}`, L('关注此地区', 'Follow region'), { 'data-testid': 'follow-topic' }),
    ];
  }

  /** The title, the facts and the region to follow, after the project's details changed. */
  function showDetails() {
    $('#project-title').textContent = shown.title;
    document.title = `${shown.title} · 阳光交易`;
    $('#facts').replaceChildren(...factItems().flat().filter(Boolean));
    $('#chips').replaceChildren(...chipItems().filter(Boolean));
  }

  /**
   * An amendment's changes, unless a later amendment already shown changed the
   * same field (a replay can bring an older one after a newer one).
   */
  function amend(event) {
    const changes = event.data?.changes ?? {};
    const later = shown.timeline.filter((e) => e.stage === 'amended' && e.seq > event.seq);
    let changed = false;
    for (const [key, value] of Object.entries(changes)) {
      if (!FIELDS.includes(key) || later.some((e) => key in (e.data?.changes ?? {}))) continue;
      shown[key] = value;
      changed = true;
    }
    if (changed) showDetails();
  }

  function deadlineItems() {
    if (!shown.deadlines.length) {
      return [h('li', { class: 'none' }, L('目前没有待办的法定时限。', 'No statutory deadline is running now.'))];
    }
    return shown.deadlines.map((d) => h('li', { 'data-testid': 'deadline', class: 'deadline' },
      h('p', { class: 'rule' }, L(d.name, ruleInEnglish(d))),
      h('p', { class: 'countdown', 'data-at': d.due || d.not_before, 'data-kind': d.due ? 'due' : 'not_before' }),
      h('p', { class: 'small muted' },
        L('依据：', 'Basis: '), h('span', { lang: 'zh-CN' }, d.basis),
        CONFIDENCE[d.confidence] ? ` · ${L(...CONFIDENCE[d.confidence])}` : '',
        d.estimated && h('strong', { class: 'estimated' },
          L(' · 估算：当年节假日安排尚未公布，按周一至周五计算', ' · Estimated: the year’s holidays are not yet published; counted Monday–Friday')))));
  }

  function nextItems() {
    const order = lifecycle(shown.category).filter((s) => s !== 'failed');
    const at = order.indexOf(shown.stage);
    const rest = shown.stage === 'failed' || shown.stage === 'performance' ? [] : order.slice(at + 1);
    if (!rest.length) return [h('li', { class: 'none' }, L('流程已结束。', 'The process has ended.'))];
    return rest.map((code) => {
      const limits = shown.deadlines.filter((d) => d.target.split('.')[0] === code);
      return h('li', { class: 'expected' },
        h('span', { class: 'stage' }, stageName(code)),
        isOptional(code) ? L('（如有）', ' (if any)') : '',
        limits.map((d) => h('span', { class: 'limit' }, d.due
          ? L(`须在 ${dueTime(d.due)} 前`, `by ${dueTime(d.due)}`)
          : L(`不早于 ${dueTime(d.not_before)}`, `not before ${dueTime(d.not_before)}`))));
    });
  }

  /** The latest lifecycle event is the current stage. */
  function markCurrent() {
    const items = [...main.querySelectorAll('[data-testid=timeline-event]:not(.oversight):not(.record)')];
    items.forEach((li) => li.removeAttribute('aria-current'));
    main.querySelectorAll('.current').forEach((badge) => badge.remove());
    const current = items.at(-1);
    if (!current) return;
    current.setAttribute('aria-current', 'step');
    current.querySelector('h3').append(h('span', { class: 'current' }, L('当前阶段', 'Current stage')));
  }

  function markCorrected() {
    for (const li of main.querySelectorAll('[data-corrects]')) {
      const target = main.querySelector(`[data-seq="${li.dataset.corrects}"]`);
      if (!target || target.querySelector('.corrected')) continue;
      target.querySelector('h3').after(h('p', { class: 'corrected' },
        L('此信息已被更正，见 ', 'Corrected: see '), h('a', { href: `#e${li.dataset.seq}` }, `#${li.dataset.seq}`)));
    }
  }

  /** A live event for this project: added in seq order, marked new, announced. */
  function arrive(event) {
    const timeline = main.querySelector('[data-testid=timeline]');
    if (!timeline || timeline.querySelector(`[data-seq="${event.seq}"]`)) return;
    keepInPlace(() => {
      const later = [...timeline.children].find((li) => Number(li.dataset.seq) > event.seq);
      shown.timeline = [...shown.timeline, event].sort((a, b) => a.seq - b.seq);
      timeline.insertBefore(eventItem(event, true, shown), later ?? null);
      shown.updated_at = event.published_at;
      if (event.stage === 'amended') amend(event);
      $('#updated').textContent = when(event.published_at);
      if (movesStage(event.stage)) {
        shown.stage = event.stage;
        $('#current-stage').textContent = stageName(event.stage);
        $('#next').replaceChildren(...nextItems());
        markCurrent();
      }
      markCorrected();
    });
    const said = event.stage === 'amended' ? event.data?.reason ?? '' : event.title;
    toast(h('a', { href: `#e${event.seq}` }, L('新进展：', 'New: ') + `【${stageName(event.stage)}】${said}`));
    db.put(`project:${id}`, { data: { ...shown, copy: undefined }, at: new Date().toISOString() });
    clearTimeout(refreshing);
    refreshing = setTimeout(refresh, 400); // deadlines follow from the new event: ask the server
  }

  async function refresh() {
    let answer;
    try {
      answer = await load(`/api/projects/${encodeURIComponent(id)}`, `project:${id}`);
    } catch {
      return; // keep what is shown; the banner says if the device is offline
    }
    if (ctx.signal.aborted || answer.cached) return;
    showingCopy(null);
    shown.copy = false;
    const missing = answer.data.timeline.filter((e) => !shown.timeline.some((s) => s.seq === e.seq));
    missing.forEach(arrive);
    // The server's record is the fold of the whole log: its details win.
    if (FIELDS.some((key) => answer.data[key] !== shown[key])) {
      for (const key of FIELDS) shown[key] = answer.data[key];
      keepInPlace(showDetails);
    }
    // Unchanged deadlines are left alone: re-drawing them could only move the page.
    if (JSON.stringify(answer.data.deadlines) === JSON.stringify(shown.deadlines)) return;
    shown.deadlines = answer.data.deadlines;
    keepInPlace(() => {
      main.querySelector('[data-testid=deadlines]').replaceChildren(...deadlineItems());
      $('#next').replaceChildren(...nextItems());
      main.querySelectorAll('[data-at]').forEach(countdown);
    });
  }
}

const fact = (term, value) => [h('dt', null, term), h('dd', null, value)];
/** An agency or region by name, its code beside it (alone when the directory has no name). */
const place = (name, code) => (name(code) === code ? code : [name(code), h('span', { class: 'small muted' }, ` ${code}`)]);

/** One event of the timeline; `project` (its timeline) tells an amendment's currency. */
function eventItem(event, isNew, project) {
  const kind = isRecord(event.stage) ? ' record' : isOversight(event.stage) ? ' oversight' : '';
  const corrects = event.stage === 'correction' ? event.data?.corrects : null;
  const amended = event.stage === 'amended';
  return h('li', {
    id: `e${event.seq}`, class: `event${kind}${isNew ? ' is-new' : ''}`,
    'data-testid': 'timeline-event', 'data-seq': event.seq, 'data-stage': event.stage, 'data-corrects': corrects ?? null,
  },
  h('p', { class: 'when' }, when(event.occurred_at || event.published_at)),
  h('h3', null,
    isNew && h('span', { class: 'new' }, L('新', 'New')),
    // An amendment's title and text repeat its reason, shown below in the reader's language.
    h('span', { class: 'stage' }, stageName(event.stage)), amended ? '' : ` ${event.title}`),
  corrects && h('p', { class: 'corrects' }, L('更正第 ', 'Corrects #'), h('a', { href: `#e${corrects}` }, `${corrects}`), L(' 号信息', '')),
  !amended && event.body && h('p', { class: 'body' }, event.body),
  event.stage === 'registered' ? registration(event.data ?? {})
    : amended ? amendment(event, project)
      : facts(event.data ?? {}),
  event.truncated && h('p', { class: 'small muted' }, L('内容较长，刷新页面可查看全文。', 'Shortened; reload for the full text.')),
  h('p', { class: 'small muted' },
    `#${event.seq} · ${L('发布于', 'published')} ${when(event.published_at)} · ${L('校验码', 'hash')} `,
    h('code', { title: event.hash }, (event.hash ?? '').slice(0, 12))));
}

/** 项目登记: the details the project was registered with (its title is the event's). */
function registration(data) {
  const rows = FIELDS.filter((key) => key !== 'title' && key !== 'currency' && data[key] != null);
  if (!rows.length) return null;
  return h('dl', { class: 'data' }, rows.map((key) => fact(dataLabel(key), detail(key, data[key], data.currency))));
}

/** 项目信息变更: the reason, then each change in words (预算 → ¥1,200,000.00). */
function amendment(event, project) {
  const changes = event.data?.changes ?? {};
  const currency = changes.currency ?? currencyBefore(project, event.seq);
  const keys = Object.keys(changes).sort((a, b) => rank(a) - rank(b));
  return [
    h('p', { class: 'reason', 'data-testid': 'reason' }, L('变更原因：', 'Reason: '), event.data?.reason ?? '—'),
    h('ul', { class: 'changes' }, keys.map((key) => h('li', { 'data-testid': 'change', 'data-field': key },
      h('span', { class: 'field' }, dataLabel(key)), ' → ', h('strong', null, detail(key, changes[key], currency))))),
  ];
}

const rank = (key) => (FIELDS.includes(key) ? FIELDS.indexOf(key) : FIELDS.length);

/** The currency in force just before `seq`: registered, then amended, in the project's timeline. */
function currencyBefore(project, seq) {
  let currency = null;
  for (const e of project?.timeline ?? []) {
    if (e.seq >= seq) break;
    if (e.stage === 'registered') currency = e.data?.currency ?? currency;
    if (e.stage === 'amended') currency = e.data?.changes?.currency ?? currency;
  }
  return currency ?? project?.currency ?? 'CNY';
}

/** One of the project's own fields, in words. */
function detail(key, value, currency) {
  if (value == null || value === '') return '—';
  if (key === 'budget') return typeof value === 'number' ? exactMoney(value, currency || 'CNY') : String(value);
  if (key === 'region') return place(regionName, value);
  if (key === 'must_tender') return value ? L('是', 'yes') : L('否', 'no');
  return show(key, value);
}

function facts(data) {
  const rows = Object.entries(data).filter(([key]) => key !== 'corrects');
  if (!rows.length) return null;
  return h('dl', { class: 'data' }, rows.map(([key, value]) => fact(dataLabel(key), show(key, value))));
}

function show(key, value) {
  if (typeof value === 'string') return TIME.test(value) ? when(value) : value;
  if (typeof value === 'boolean') return value ? L('是', 'yes') : L('否', 'no');
  if (typeof value === 'number') return MONEY.test(key) ? money(value) : number(value);
  if (Array.isArray(value)) {
    return h('ol', { class: 'plain' }, value.map((item) => h('li', null, item && typeof item === 'object'
      ? Object.entries(item).filter(([k]) => k !== 'rank').map(([k, v]) => show(k, v)).join(' · ')
      : show(key, item))));
  }
  return value == null ? '—' : JSON.stringify(value);
}

function countdown(el) {
  const at = el.dataset.at;
  const left = parseTime(at) - Date.now();
  const moment = dueTime(at);
  el.classList.toggle('late', el.dataset.kind === 'due' && left < 0);
  el.textContent = el.dataset.kind === 'due'
    ? left >= 0
      ? L(`截止：${moment}，还剩 ${span(left)}`, `Due ${moment}: ${span(left)} left`)
      : L(`已超过截止时间 ${span(left)}（${moment}）`, `Overdue by ${span(left)} (${moment})`)
    : left >= 0
      ? L(`最早：${moment}，还有 ${span(left)}`, `Not before ${moment}: ${span(left)} from now`)
      : L(`自 ${moment} 起可以进行`, `Allowed since ${moment}`);
}

function ruleInEnglish(deadline) {
  const [stage, , field] = deadline.target.split('.');
  const what = field ? dataLabel(field) : stageName(stage);
  return deadline.kind === 'due_within' ? `${what}: due within the statutory period` : `${what}: not earlier than the statutory minimum`;
}

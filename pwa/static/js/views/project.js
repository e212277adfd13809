// `/p/{id}`: one transaction's whole process — what matters next (key dates
// with a countdown), what happened (the timeline, newest first), the open
// statutory deadlines, what comes next — kept live over the WebSocket.
import { h, $, exactMoney, parseTime, span, keepInPlace, showingCopy, failure, toast } from '../ui.js';
import { L } from '../i18n.js';
import { load } from '../api.js';
import * as db from '../db.js';
import {
  categoryName, stageName, stageFields, isOversight, isRecord, movesStage, isOptional, lifecycle,
  dataLabel, fieldOf, agencyName, regionName, keyDateFields, closesFields, keyDateName,
} from '../vocab.js';
import { live } from '../live.js';
import * as follows from '../follows.js';
import { followToggle, pushControl, citation, dateTime, factList, factValue, stepLink, budgetText, subscribeLinks } from './parts.js';
import { askSection } from './ask.js';

const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d/;
// The project's own fields, as registered and amended, in the order they are listed.
const FIELDS = ['title', 'budget', 'currency', 'region', 'must_tender'];
const OWN = {
  title: ['项目名称', 'Title'],
  budget: ['预算', 'Budget'],
  currency: ['币种', 'Currency'],
  region: ['地区', 'Region'],
  must_tender: ['依法必须招标', 'Tender required by law'],
};
const ownLabel = (key) => (fieldOf(key) ? dataLabel(key) : OWN[key] ? L(...OWN[key]) : key);
// Until the vocabulary marks key dates (`key_date`, `closes`), the dates bidders plan by.
const KEY_DATES = ['deadline', 'submission_deadline', 'listing_ends', 'auction_starts', 'auction_at', 'publicity_ends'];
const CLOSES = ['deadline', 'submission_deadline', 'listing_ends'];
// The step a key date announces, so 「接下来」 can say when it happens (开标 at the bid deadline).
const ANNOUNCES = { deadline: 'bid_opening', auction_starts: 'auction', auction_at: 'auction', listing_ends: 'auction', publicity_ends: 'award' };

export default async function project(main, ctx) {
  const id = ctx.params[0];
  const topic = `project:${id}`;
  let shown = null; // the project as on screen
  const early = []; // live events that came before the first render
  let refreshing = 0;
  let lateOpen = []; // late items (compliance) whose step is not published yet

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
  markLate();

  const tick = setInterval(() => main.querySelectorAll('[data-at]').forEach(countdown), 30_000);
  ctx.onLeave(() => clearInterval(tick));

  function render() {
    const p = shown;
    main.replaceChildren(
      h('p', { class: 'crumbs' }, h('a', { href: '/' }, L('← 全部项目', '← All projects'))),
      h('h1', { tabindex: -1, id: 'project-title' }, p.title),
      // The stage has a line of its own, so a longer stage name arriving live moves nothing.
      h('p', { class: 'meta' }, h('span', { class: 'stage', id: 'current-stage' }, stageName(p.stage, p.category)), h('br'), categoryName(p.category)),
      h('section', { class: 'key-dates', 'aria-labelledby': 'h-key-dates', 'data-testid': 'key-dates' },
        h('h2', { id: 'h-key-dates' }, L('关键日期', 'Key dates')),
        h('ul', { class: 'plain', id: 'key-dates' }, keyDateItems())),
      h('dl', { class: 'facts', id: 'facts', 'data-testid': 'project-facts' }, factItems()),
      h('div', { class: 'actions' },
        followToggle(topic, L('关注此项目', 'Follow this project'), { 'data-testid': 'follow' }),
        // Asking to be notified about this project implies following it.
        pushControl({ before: () => follows.set(topic, true) })),
      h('div', { class: 'chips', id: 'chips', role: 'group', 'aria-label': L('也可以关注', 'Also follow') }, chipItems()),
      subscribeLinks({
        feed: `/api/feed.atom?topics=${encodeURIComponent(topic)}`,
        calendar: `/api/projects/${encodeURIComponent(id)}/deadlines.ics`,
      }),
      h('section', { 'aria-labelledby': 'h-timeline' },
        h('h2', { id: 'h-timeline' }, L('全过程（最新在前）', 'The whole process (newest first)')),
        h('ol', { class: 'timeline collapsed', id: 'timeline', 'data-testid': 'timeline' },
          [...p.timeline].sort((a, b) => b.seq - a.seq).map((e) => eventItem(e, false, p))),
        h('button', { type: 'button', class: 'older-toggle', id: 'older-toggle', 'data-testid': 'older-toggle', 'aria-controls': 'timeline', 'aria-expanded': 'false', onclick: () => showOlder(!olderShown()) }),
        h('h3', { class: 'next-title' }, L('接下来', 'What comes next')),
        h('ol', { class: 'timeline next', id: 'next' }, nextItems())),
      h('section', { 'aria-labelledby': 'h-deadlines' },
        h('h2', { id: 'h-deadlines' }, L('法定时限', 'Statutory deadlines')),
        h('ul', { class: 'deadlines', 'data-testid': 'deadlines' }, deadlineItems())),
      askSection(id, p.agency, ctx),
    );
    markCurrent();
    markCorrected();
    markOlder();
    main.querySelectorAll('[data-at]').forEach(countdown);
    if (/^#e\d+$/.test(location.hash)) reveal(location.hash.slice(1));
  }

  // --- the timeline: the current stage first, older steps behind a control ------------------

  function olderShown() {
    return !$('#timeline').classList.contains('collapsed');
  }
  function showOlder(open) {
    $('#timeline').classList.toggle('collapsed', !open);
    markOlder();
  }
  /** Steps older than the current stage are collapsed; the control says how many. */
  function markOlder() {
    const timeline = $('#timeline');
    const current = timeline.querySelector('[aria-current=step]');
    const at = current ? Number(current.dataset.seq) : -Infinity;
    let older = 0;
    for (const li of timeline.children) {
      const old = Number(li.dataset.seq) < at;
      li.classList.toggle('older', old);
      older += old;
    }
    const button = $('#older-toggle');
    button.hidden = !older;
    button.setAttribute('aria-expanded', String(olderShown()));
    button.textContent = olderShown()
      ? L('收起更早的信息', 'Hide earlier steps')
      : L(`显示更早的 ${older} 条信息`, `Show ${older} earlier step${older > 1 ? 's' : ''}`);
  }
  /** A link to a step (#e12) opens the older steps when it is among them. */
  function reveal(anchor) {
    const target = document.getElementById(anchor);
    if (target?.classList.contains('older') && !olderShown()) showOlder(true);
  }
  const onLink = (e) => {
    const link = e.target.closest?.('a[href^="#e"]');
    if (link) reveal(link.getAttribute('href').slice(1));
  };
  main.addEventListener('click', onLink);
  ctx.onLeave(() => main.removeEventListener('click', onLink));
  const onHash = () => /^#e\d+$/.test(location.hash) && reveal(location.hash.slice(1));
  addEventListener('hashchange', onHash);
  ctx.onLeave(() => removeEventListener('hashchange', onHash));

  // --- key dates ---------------------------------------------------------------------------

  /** The dates bidders plan by: the server's `key_dates`, or found in the timeline's data. */
  function keyDates() {
    if (Array.isArray(shown.key_dates)) return shown.key_dates;
    const wanted = keyDateFields().length ? keyDateFields() : KEY_DATES;
    const latest = new Map();
    for (const e of [...shown.timeline].sort((a, b) => a.seq - b.seq)) {
      for (const key of wanted) {
        const at = e.data?.[key];
        if (typeof at === 'string' && TIME.test(at)) latest.set(key, { field: key, at, stage: e.stage, seq: e.seq });
      }
    }
    return [...latest.values()].sort((a, b) => parseTime(a.at) - parseTime(b.at));
  }
  function closing() {
    return closesFields().length ? closesFields() : CLOSES;
  }
  /** The key date that closes the bidding window (bid deadline, listing end), if any. */
  function closes(dates) {
    const at = 'closes_at' in shown ? shown.closes_at : null;
    const candidates = dates.filter((d) => closing().includes(d.field));
    if (at) return candidates.find((d) => d.at === at) ?? { field: candidates[0]?.field ?? 'deadline', at };
    return 'closes_at' in shown ? null : candidates.sort((a, b) => b.seq - a.seq)[0] ?? null;
  }
  function keyDateItems() {
    const p = shown;
    const dates = keyDates();
    const close = closes(dates);
    const rows = [];
    const row = (field, label, at, kind, note) => h('li', { class: `key-date${kind === 'closes' ? ' closes' : ''}`, 'data-testid': 'key-date', 'data-field': field },
      h('span', { class: 'label' }, label),
      h('span', { class: 'at' }, at ? dateTime(at) : ''),
      note && h('span', { class: 'note small muted' }, note),
      at && h('span', { class: 'countdown', 'data-at': at, 'data-kind': kind, 'data-ended': kind === 'closes' && p.open === false ? '' : null }));
    if (close) rows.push(row(close.field, keyDateName(close.field), close.at, 'closes'));
    // Bids are opened publicly at the moment they close (招标投标法第三十四条).
    // (Unless the opening time is published as a key date of its own.)
    if (lifecycle(p.category).includes('bid_opening') && close?.field === 'deadline' && !dates.some((d) => d.field === 'opening_at')) {
      const opened = p.timeline.find((e) => e.stage === 'bid_opening');
      rows.push(opened
        ? row('bid_opening', L('开标时间', 'Bid opening'), opened.occurred_at || opened.published_at, 'done')
        : row('bid_opening', L('开标时间', 'Bid opening'), close.at, 'key', L('与投标截止同时', 'when bids close')));
    }
    for (const d of dates) if (d !== close && !(close && d.field === close.field)) rows.push(row(d.field, keyDateName(d.field), d.at, 'key'));
    const next = p.deadlines.filter((d) => d.due).sort((a, b) => parseTime(a.due) - parseTime(b.due))[0];
    if (next) rows.push(row('statutory', L(`法定时限：${next.name}`, `Statutory: ${next.name_en || ruleInEnglish(next)}`), next.due, 'statutory'));
    for (const item of lateOpen) rows.push(h('li', { class: 'key-date late-item', 'data-testid': 'late' }, lateText(item)));
    if (!rows.length) rows.push(h('li', { class: 'none' }, L('目前没有待定的关键日期。', 'No key date ahead.')));
    return rows;
  }
  function showKeyDates() {
    $('#key-dates').replaceChildren(...keyDateItems());
    main.querySelectorAll('#key-dates [data-at]').forEach(countdown);
  }

  // --- late steps (the compliance watchdog's items) -----------------------------------------

  function lateText(item) {
    const rule = [
      item.rule_name ? h('span', { class: 'small' }, `（${L(item.rule_name.zh, item.rule_name.en || item.rule_name.zh)}）`) : '',
      // Local practice or policy, not law: said so, as the scorecard does.
      item.advisory ? [' ', h('span', { class: 'tag advisory', 'data-testid': 'advisory-tag' }, L('地方惯例', 'local practice'))] : '',
    ];
    // A minimum period left too short (notice → bid deadline under 20 days) is not lateness.
    if (item.state === 'too_short' || (item.kind === 'at_least' && !item.state)) {
      return [h('strong', null, L('时限不足', 'Period too short')),
        L(`，不应早于 ${dateTime(item.due_at)}`, `: not before ${dateTime(item.due_at)}`), rule];
    }
    const days = Math.max(1, Math.ceil(((item.done_at ? parseTime(item.done_at) : Date.now()) - parseTime(item.due_at)) / 86_400_000));
    return [
      h('strong', null, L(`逾期 ${days} 天`, `${days} day${days > 1 ? 's' : ''} late`)),
      L(`，应于 ${dateTime(item.due_at)} 前公开`, `: due by ${dateTime(item.due_at)}`),
      rule,
    ];
  }
  async function markLate() {
    let answer;
    try {
      // As the shell's Link header names it (server/api/pages.py), so the preload answers it.
      answer = await load(`/api/compliance/items?project=${encodeURIComponent(id)}&status=late`);
    } catch {
      return; // no figures (yet): nothing is marked
    }
    if (ctx.signal.aborted) return;
    const items = answer.data?.items ?? [];
    keepInPlace(() => {
      main.querySelectorAll('[data-testid=timeline-event] > .late-mark').forEach((mark) => mark.remove());
      for (const item of items) {
        const step = main.querySelector(`[data-testid=timeline-event][data-seq="${item.target_seq}"]`);
        if (step) step.querySelector('h3').after(h('p', { class: 'late-mark', 'data-testid': 'late' }, lateText(item)));
      }
      lateOpen = items.filter((item) => item.target_seq == null);
      showKeyDates();
    });
  }

  function factItems() {
    const p = shown;
    return [
      fact(L('项目编号', 'Code'), p.id),
      fact(L('发布机构', 'Agency'), place(agencyName, p.agency)),
      p.region && fact(L('地区', 'Region'), place(regionName, p.region)),
      p.budget != null && fact(L('预算', 'Budget'), h('span', { 'data-testid': 'budget' }, budgetText(p.budget, p.currency || 'CNY'))),
      p.must_tender != null && fact(L('依法必须招标', 'Tender required by law'), p.must_tender ? L('是', 'yes') : L('否', 'no')),
      fact(L('最近动态', 'Latest activity'), h('span', { id: 'updated' }, dateTime(p.updated_at))),
    ];
  }

  function chipItems() {
    const p = shown;
    return [
      followToggle(`category:${p.category}`, L(`关注类别：${categoryName(p.category)}`, `Follow category: ${categoryName(p.category)}`), { 'data-testid': 'follow-topic' }),
      followToggle(`agency:${p.agency}`, L(`关注机构：${agencyName(p.agency)}`, `Follow agency: ${agencyName(p.agency)}`), { 'data-testid': 'follow-topic' }),
      p.region && followToggle(`region:${p.region}`, L(`关注地区：${regionName(p.region)}`, `Follow region: ${regionName(p.region)}`), { 'data-testid': 'follow-topic' }),
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
      h('p', { class: 'rule' }, L(d.name, d.name_en || ruleInEnglish(d))),
      h('p', { class: 'countdown', 'data-at': d.due || d.not_before, 'data-kind': d.due ? 'due' : 'not_before' }),
      // How sure the basis is matters to supervisors; the public page states the basis plainly.
      h('p', { class: 'small muted' },
        L('依据：', 'Basis: '), d.basis_en ? L(citation(d.basis), d.basis_en) : h('span', { lang: 'zh-CN' }, citation(d.basis)),
        d.estimated && h('strong', { class: 'estimated' },
          L(' · 估算：当年节假日安排尚未公布，按周一至周五计算', ' · Estimated: the year’s holidays are not yet published; counted Monday–Friday')))));
  }

  function nextItems() {
    const order = lifecycle(shown.category).filter((s) => s !== 'failed');
    const at = order.indexOf(shown.stage);
    const rest = shown.stage === 'failed' || shown.stage === 'performance' ? [] : order.slice(at + 1);
    if (!rest.length) return [h('li', { class: 'none' }, L('流程已结束。', 'The process has ended.'))];
    const dates = keyDates();
    return rest.map((code) => {
      const limits = shown.deadlines.filter((d) => d.target.split('.')[0] === code);
      // When the step is announced for (开标 at the bid deadline), the latest date published.
      const planned = dates.filter((d) => ANNOUNCES[d.field] === code).at(-1);
      return h('li', { class: 'expected', 'data-stage': code },
        h('span', { class: 'stage' }, stageName(code, shown.category)),
        isOptional(code) ? L('（如有）', ' (if any)') : '',
        planned && h('span', { class: 'planned', 'data-testid': 'next-date' }, L(`时间：${dateTime(planned.at)}`, `at ${dateTime(planned.at)}`)),
        limits.map((d) => h('span', { class: 'limit' }, d.due
          ? L(`须在 ${dateTime(d.due)} 前`, `by ${dateTime(d.due)}`)
          : L(`不早于 ${dateTime(d.not_before)}`, `not before ${dateTime(d.not_before)}`))));
    });
  }

  /** The latest lifecycle event is the current stage. */
  function markCurrent() {
    const items = [...main.querySelectorAll('[data-testid=timeline-event]:not(.oversight):not(.record)')];
    items.forEach((li) => li.removeAttribute('aria-current'));
    main.querySelectorAll('.current').forEach((badge) => badge.remove());
    const current = items.sort((a, b) => b.dataset.seq - a.dataset.seq)[0];
    if (!current) return;
    current.setAttribute('aria-current', 'step');
    current.querySelector('h3').append(h('span', { class: 'current' }, L('当前阶段', 'Current stage')));
  }

  function markCorrected() {
    for (const li of main.querySelectorAll('[data-corrects]')) {
      const target = main.querySelector(`[data-seq="${li.dataset.corrects}"]`);
      if (!target || target.querySelector('.corrected')) continue;
      target.querySelector('h3').after(h('p', { class: 'corrected' },
        L('此信息已被更正，见 ', 'Corrected: see '), h('a', { href: `#e${li.dataset.seq}`, class: 'ref' }, L(`第 ${li.dataset.seq} 号信息`, `#${li.dataset.seq}`))));
    }
  }

  /** A live event for this project: added in seq order, marked new, announced. */
  function arrive(event) {
    const timeline = main.querySelector('[data-testid=timeline]');
    if (!timeline || timeline.querySelector(`[data-seq="${event.seq}"]`)) return;
    keepInPlace(() => {
      // Newest first: before the first step older than this one.
      const older = [...timeline.children].find((li) => Number(li.dataset.seq) < event.seq);
      shown.timeline = [...shown.timeline, event].sort((a, b) => a.seq - b.seq);
      timeline.insertBefore(eventItem(event, true, shown), older ?? null);
      shown.updated_at = event.published_at;
      if (event.stage === 'amended') amend(event);
      $('#updated').textContent = dateTime(event.published_at);
      if (movesStage(event.stage)) {
        shown.stage = event.stage;
        $('#current-stage').textContent = stageName(event.stage, shown.category);
        $('#next').replaceChildren(...nextItems());
        markCurrent();
      }
      markCorrected();
      markOlder();
    });
    const said = event.stage === 'amended' ? event.data?.reason ?? ''
      : event.stage === 'enquiry_answer' ? clip(event.data?.question) : event.title;
    toast(h('a', { href: `#e${event.seq}` }, L('新进展：', 'New: ') + `【${stageName(event.stage, shown.category)}】${said}`));
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
    markLate();
    // Unchanged dates are left alone: re-drawing them could only move the page.
    const dates = (p) => JSON.stringify([p.deadlines, p.key_dates, p.closes_at, p.timeline.length]);
    if (dates(answer.data) === dates(shown)) return;
    Object.assign(shown, { deadlines: answer.data.deadlines, key_dates: answer.data.key_dates, closes_at: answer.data.closes_at });
    if (!('key_dates' in answer.data)) delete shown.key_dates;
    if (!('closes_at' in answer.data)) delete shown.closes_at;
    keepInPlace(() => {
      main.querySelector('[data-testid=deadlines]').replaceChildren(...deadlineItems());
      $('#next').replaceChildren(...nextItems());
      showKeyDates();
      main.querySelectorAll('[data-at]').forEach(countdown);
    });
  }
}

const fact = (term, value) => [h('dt', null, term), h('dd', null, value)];
/** The start of a long text, for a one-line announcement. */
const clip = (text, length = 40) => (String(text ?? '').length > length ? `${String(text).slice(0, length)}…` : String(text ?? ''));
/** An agency or region by name (its code only when the directory has no name for it). */
const place = (name, code) => name(code);

/** One event of the timeline; `project` (its timeline) tells an amendment's currency. */
function eventItem(event, isNew, project) {
  const kind = isRecord(event.stage) ? ' record' : isOversight(event.stage) ? ' oversight' : '';
  const corrects = event.stage === 'correction' ? event.data?.corrects : null;
  const amended = event.stage === 'amended';
  const answer = event.stage === 'enquiry_answer';
  const own = amended || answer; // the title and text only repeat what is shown below
  return h('li', {
    id: `e${event.seq}`, class: `event${kind}${isNew ? ' is-new' : ''}`,
    'data-testid': 'timeline-event', 'data-seq': event.seq, 'data-stage': event.stage, 'data-corrects': corrects ?? null,
  },
  h('p', { class: 'when' }, dateTime(event.occurred_at || event.published_at)),
  h('h3', null,
    isNew && h('span', { class: 'new' }, L('新', 'New')),
    // An amendment's title and text repeat its reason, shown below in the reader's language.
    h('span', { class: 'stage' }, stageName(event.stage, project?.category)), own ? '' : ` ${event.title}`),
  corrects && h('p', { class: 'corrects' }, L('更正：', 'Corrects: '), stepLink(corrects, project?.timeline, project?.category)),
  !own && event.body && h('p', { class: 'body' }, event.body),
  event.stage === 'registered' ? registration(event.data ?? {})
    : amended ? amendment(event, project)
      : answer ? questionAndAnswer(event.data ?? {})
        : facts(event, project),
  event.truncated && h('p', { class: 'small muted' }, L('内容较长，刷新页面可查看全文。', 'Shortened; reload for the full text.')),
  h('p', { class: 'small muted' },
    `#${event.seq} · ${L('发布于', 'published')} ${dateTime(event.published_at)} · ${L('校验码', 'hash')} `,
    h('code', { title: event.hash }, (event.hash ?? '').slice(0, 12))));
}

/** 咨询答复: the question as published (personal details removed), the answer, when it was asked. */
function questionAndAnswer(data) {
  return [
    h('dl', { class: 'qa' },
      h('dt', null, L('问', 'Q')), h('dd', { 'data-testid': 'qa-question' }, data.question ?? '—'),
      h('dt', null, L('答', 'A')), h('dd', { 'data-testid': 'qa-answer' }, data.answer ?? '—')),
    data.asked_at && h('p', { class: 'small muted' }, L(`提问于 ${dateTime(data.asked_at)}`, `Asked ${dateTime(data.asked_at)}`)),
  ];
}

/** 项目登记: the details the project was registered with (its title is the event's). */
function registration(data) {
  const rows = FIELDS.filter((key) => key !== 'title' && key !== 'currency' && data[key] != null);
  if (!rows.length) return null;
  return h('dl', { class: 'data' }, rows.map((key) => fact(ownLabel(key), detail(key, data[key], data.currency))));
}

/** 项目信息变更: the reason, then each change in words (预算 → ¥1,200,000.00). */
function amendment(event, project) {
  const changes = event.data?.changes ?? {};
  const currency = changes.currency ?? currencyBefore(project, event.seq);
  const keys = Object.keys(changes).sort((a, b) => rank(a) - rank(b));
  return [
    h('p', { class: 'reason', 'data-testid': 'reason' }, L('变更原因：', 'Reason: '), event.data?.reason ?? '—'),
    h('ul', { class: 'changes' }, keys.map((key) => h('li', { 'data-testid': 'change', 'data-field': key },
      h('span', { class: 'field' }, ownLabel(key)), ' → ', h('strong', null, detail(key, changes[key], currency))))),
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
  return factValue(key, value, { currency });
}

/** A published event's facts, exactly as published, in the stage's own order. */
function facts(event, project) {
  const data = { ...(event.data ?? {}) };
  const category = project?.category;
  const correcting = typeof data.field === 'string' ? data.field : null;
  return factList(data, {
    order: stageFields(category, event.stage),
    skip: event.stage === 'correction' ? ['corrects'] : [], // shown above as a link
    currency: project?.currency || 'CNY',
    // A correction's old and new values read like the field they correct.
    as: correcting ? { was: correcting, now: correcting } : {},
    link: (seq) => stepLink(seq, project?.timeline, category),
  });
}

/** A countdown: to a key date (还有 12 天 / 已截止), a statutory due date, or a not-before. */
function countdown(el) {
  const at = el.dataset.at;
  const left = parseTime(at) - Date.now();
  const moment = dateTime(at);
  const kind = el.dataset.kind;
  el.classList.toggle('late', (kind === 'due' || kind === 'statutory') && left < 0);
  if (kind === 'closes' || kind === 'key' || kind === 'done' || kind === 'statutory') {
    el.classList.toggle('past', left < 0 && kind !== 'statutory');
    el.textContent = 'ended' in el.dataset && left >= 0 ? L('已结束', 'Ended') : left >= 0
      ? L(`还有 ${span(left)}`, `${span(left)} left`)
      : kind === 'closes' ? L('已截止', 'Closed') : kind === 'statutory' ? L('已超期', 'Overdue') : L('已过', 'Passed');
    return;
  }
  el.textContent = kind === 'due'
    ? left >= 0
      ? L(`截止：${moment}，还剩 ${span(left)}`, `Due ${moment}: ${span(left)} left`)
      : L(`已超过截止时间 ${span(left)}（${moment}）`, `Overdue by ${span(left)} (${moment})`)
    : left >= 0
      ? L(`最早：${moment}，还有 ${span(left)}`, `Not before ${moment}: ${span(left)} from now`)
      : L(`自 ${moment} 起可以进行`, `Allowed since ${moment}`);
}

function ruleInEnglish(deadline) {
  const [stage, , field] = deadline.target.split('.');
  const what = field ? dataLabel(field) : stageName(stage, deadline.category);
  return deadline.kind === 'due_within' ? `${what}: due within the statutory period` : `${what}: not earlier than the statutory minimum`;
}

// `/catalog`: the disclosure catalogue (公开事项标准目录), the statutory time
// limits, and each agency's public scorecard.
import { h, when, dueTime, parseTime, span, showingCopy, failure, problem } from '../ui.js';
import { L, pick, current } from '../i18n.js';
import { navigate } from '../router.js';
import { citation } from './parts.js';
import { load } from '../api.js';
import { allCategories, categoryName, stageName, agencyName } from '../vocab.js';
import { OUTCOMES } from '../cases.js';

export default async function catalog(main, ctx) {
  main.replaceChildren(h('h1', { tabindex: -1 }, L('公开目录与考核', 'Catalogue and scorecard')),
    h('p', { class: 'lead' }, L('每类交易必须公开哪些信息、依据什么、多久内公开；各机构是否按时做到。',
      'What each kind of transaction must disclose, on what basis and how soon — and whether each agency does so on time.')));
  const month = /^\d{4}-\d{2}$/.test(ctx.query.get('month') ?? '') ? ctx.query.get('month') : '';
  let answers;
  try {
    answers = await Promise.all([
      load(`/api/compliance${month ? `?month=${month}` : ''}`, month ? `compliance:${month}` : 'compliance'),
      load('/api/catalog', 'catalog'),
    ]);
  } catch (error) {
    if (!ctx.signal.aborted) main.append(failure(error, () => catalog(main, ctx)));
    return;
  }
  if (ctx.signal.aborted) return;
  const [score, items] = answers.map((a) => a.data);
  showingCopy(answers.find((a) => a.cached)?.cached ?? null);

  const list = h('ul', { class: 'catalog', 'data-testid': 'catalog' });
  const filter = h('select', { id: 'c-category' }, h('option', { value: '' }, L('全部类别', 'All categories')),
    allCategories().map((c) => h('option', { value: c.code }, categoryName(c.code))));
  const fill = () => list.replaceChildren(...items.items
    .filter((item) => !filter.value || item.categories.includes(filter.value))
    .map(catalogItem));
  filter.addEventListener('change', fill);
  fill();

  main.append(
    h('section', { 'aria-labelledby': 'h-score' },
      h('h2', { id: 'h-score' }, L('各机构按时公开情况', 'On-time disclosure by agency')),
      monthPicker(score, month),
      h('p', { class: 'small muted' }, L(`统计截至 ${when(score.as_of)}；问题最多的机构排在前面。点逾期或超期未公开的数字可查看每一项。`,
        `As of ${when(score.as_of)}; agencies with most problems first. Tap a late or overdue figure to see each item.`)),
      h('p', { class: 'small', 'data-testid': 'legal-only' }, L('只统计法定时限；地方惯例和政策性时限另列。',
        'Only statutory limits are counted; local practice and policy limits are shown apart.')),
      h('ul', { class: 'scorecard', 'data-testid': 'scorecard' },
        score.agencies.length ? worstFirst(score.agencies).map((a) => agency(a, month, rulesById(items.rules)))
          : h('li', null, month ? L('这个月没有到期的公开事项。', 'Nothing was due this month.') : L('暂无数据。', 'No data yet.')))),
    h('section', { 'aria-labelledby': 'h-catalog' },
      h('h2', { id: 'h-catalog' }, L('公开事项标准目录', 'Disclosure catalogue')),
      h('div', { class: 'field' }, h('label', { for: 'c-category' }, L('类别', 'Category')), filter),
      list),
    h('section', { 'aria-labelledby': 'h-rules' },
      h('h2', { id: 'h-rules' }, L('法定时限规则', 'Statutory time limits')),
      h('details', null, h('summary', null, L(`查看全部 ${items.rules.length} 条规则`, `Show all ${items.rules.length} rules`)),
        h('ul', { class: 'rules' }, items.rules.map(rule)))),
  );
}

const rulesById = (rules) => new Map(rules.map((r) => [r.id, r]));

/**
 * Most late, too short and open breaches first, then the lowest on-time rate; agencies with
 * nothing due last. The legal figures only: advisory ones (advisory_late, advisory_open) never rank.
 */
function worstFirst(agencies) {
  const problems = (a) => a.late + (a.too_short ?? 0) + a.open_breaches;
  return [...agencies].sort((a, b) => problems(b) - problems(a)
    || (a.on_time_rate ?? 2) - (b.on_time_rate ?? 2));
}

/** Which month the figures are for: every month any agency has figures for, the current one too. */
function monthPicker(score, month) {
  const months = new Set([score.as_of.slice(0, 7)]);
  for (const a of score.agencies) for (const p of a.by_period ?? []) months.add(p.period);
  if (month) months.add(month);
  const select = h('select', { id: 'c-month', 'data-testid': 'month' },
    h('option', { value: '' }, L('全部月份', 'All months')),
    [...months].sort().reverse().map((m) => h('option', { value: m, selected: m === month }, L(`${m.slice(0, 4)} 年 ${Number(m.slice(5))} 月`, m))));
  select.addEventListener('change', () => navigate(select.value ? `/catalog?month=${select.value}` : '/catalog', { replace: true }));
  return h('div', { class: 'field' }, h('label', { for: 'c-month' }, L('月份', 'Month')), select);
}

function agency(a, month, rules) {
  const rate = a.on_time_rate == null ? null : Math.round(a.on_time_rate * 100);
  const items = h('div', { class: 'drill', 'data-testid': 'drill' });
  // The late, too-short and overdue figures open the list of their items, one at a time.
  // Too short (时限不足) is counted apart from late; the items API lists both as status late.
  // The legal figures list legal items only; the advisory ones (local practice, policy)
  // list theirs, late and too short together as advisory_late counts them.
  const figure = (kind, count, zh, en) => {
    const [status, state, advisory] = {
      late: ['late', 'late', false], too_short: ['late', 'too_short', false], open: ['open', null, false],
      advisory_late: ['late', null, true], advisory_open: ['open', null, true],
    }[kind];
    const text = L(`${zh} ${count}`, `${count} ${en}`);
    if (!count) return h('span', { class: 'figure' }, text);
    const button = h('button', { type: 'button', class: advisory ? 'figure' : 'figure bad', 'data-testid': `drill-${kind}`, 'aria-expanded': 'false' }, text);
    button.addEventListener('click', async () => {
      const open = button.getAttribute('aria-expanded') === 'true';
      for (const other of button.closest('.score').querySelectorAll('button.figure')) other.setAttribute('aria-expanded', 'false');
      if (open) return items.replaceChildren();
      button.setAttribute('aria-expanded', 'true');
      await showItems(items, { agency: a.agency, status, month }, rules, a.too_short == null ? null : state, advisory);
    });
    return button;
  };
  const advisory = (a.advisory_late ?? 0) + (a.advisory_open ?? 0) > 0;
  return h('li', { class: 'score', 'data-agency': a.agency },
    h('h3', null, agencyName(a.agency)),
    h('p', null, rate == null ? (advisory ? L('尚无到期的法定时限事项', 'No statutory item due yet') : L('尚无到期事项', 'Nothing due yet')) : [
      h('strong', { class: rate < 90 ? 'bad' : 'good' }, `${rate}%`), L(' 按时公开', ' on time')]),
    rate != null && h('meter', { min: 0, max: 100, value: rate, 'aria-label': L('按时率', 'On-time rate') }),
    h('p', { class: 'small' }, L(`应公开 ${a.due} 项，按时 ${a.on_time} 项`, `${a.due} due, ${a.on_time} on time`)),
    h('p', { class: 'figures' }, figure('late', a.late, '逾期', 'late'),
      a.too_short != null && figure('too_short', a.too_short, '时限不足', 'period too short'),
      figure('open', a.open_breaches, '超期未公开', 'overdue, not disclosed')),
    advisory && h('p', { class: 'figures advisory', 'data-testid': 'advisory' },
      h('span', null, L('地方惯例（非法定）：', 'Local practice, not law:')),
      figure('advisory_late', a.advisory_late, '逾期', 'late'),
      figure('advisory_open', a.advisory_open, '超期未公开', 'overdue')),
    a.enquiries?.received > 0 && responseFigures('enquiries', L('咨询答复', 'Enquiries'), a.enquiries),
    a.disclosure_requests?.received > 0 && responseFigures('disclosure-requests', L('依申请公开', 'Disclosure requests'), a.disclosure_requests),
    items);
}

/** How the public's cases ended, in words: an enquiry's way of closing, a request's outcome. */
const ENDINGS = () => ({
  answered: L('公开答复', 'answered'), linked: L('引用已有答复', 'linked to an answer'), declined: L('不予答复', 'declined'),
  ...OUTCOMES(),
});

/**
 * How an agency answers the public (回应), shown once it received any case:
 * received, answered on time, late, still open, the median days to answer,
 * how the cases ended and, for enquiries, how satisfied the askers said they were.
 */
function responseFigures(kind, title, f) {
  const figure = (zh, en, value, bad = false) => h('span', { class: `figure${bad && value ? ' bad' : ''}`, 'data-figure': en.toLowerCase().replace(/ /g, '_') },
    L(`${zh} ${value}`, `${value} ${en}`));
  const satisfaction = f.satisfaction;
  return h('div', { class: 'response', 'data-testid': `respond-${kind}` },
    h('p', { class: 'small' }, h('strong', null, title)),
    h('p', { class: 'figures' },
      figure('收到', 'received', f.received),
      figure('按时答复', 'on time', f.answered_on_time),
      figure('逾期', 'late', f.late, true),
      figure('办理中', 'open', f.open),
      f.median_days != null && h('span', { class: 'figure', 'data-figure': 'median' }, L(`用时中位数 ${f.median_days} 天`, `median ${f.median_days} days`)),
      satisfaction?.count ? h('span', { class: 'figure', 'data-figure': 'satisfaction' },
        L(`满意度 ${satisfaction.mean.toFixed(1)} / 5（${satisfaction.count} 人评价）`, `satisfaction ${satisfaction.mean.toFixed(1)} / 5 (${satisfaction.count} rated)`)) : null),
    Object.keys(f.outcomes ?? {}).length > 0 && h('p', { class: 'small muted', 'data-testid': 'outcomes' },
      Object.entries(f.outcomes).map(([code, n]) => L(`${ENDINGS()[code] ?? code} ${n}`, `${n} ${ENDINGS()[code] ?? code}`)).join(L('，', ', '))));
}

/** Each late or open item of an agency: the project, the rule in words, due vs done, by how much. */
async function showItems(box, { agency: code, status, month }, rules, state, advisory) {
  box.replaceChildren(h('p', { class: 'loading', role: 'status' }, L('正在加载…', 'Loading…')));
  const query = new URLSearchParams({ agency: code, status });
  if (month) query.set('month', month);
  let data;
  try {
    ({ data } = await load(`/api/compliance/items?${query}`, `compliance-items:${query}`));
  } catch (error) {
    box.replaceChildren(h('p', { class: 'error', role: 'alert' }, problem(error)));
    return;
  }
  const shown = data.items.filter((item) => Boolean(item.advisory) === advisory
    && (!state || stateOf(item, rules) === state));
  if (!shown.length) {
    box.replaceChildren(h('p', { class: 'none' }, L('没有找到对应的事项。', 'No items found.')));
    return;
  }
  box.replaceChildren(h('ul', { class: 'plain items', 'data-testid': 'items' }, shown.map((item) => complianceItem(item, rules))));
  box.querySelector('a')?.focus();
}

/** late: done after the deadline; overdue: due and not done; too_short: a minimum period left too short. */
function stateOf(item, rules) {
  if (item.state) return item.state;
  const kind = item.kind ?? rules.get(item.rule)?.kind;
  if (item.status === 'open') return 'overdue';
  if (item.status === 'late' && kind === 'at_least') return 'too_short';
  return item.status;
}

function complianceItem(item, rules) {
  const state = stateOf(item, rules);
  const due = item.due_at ? dueTime(item.due_at) : '—';
  const done = item.done_at ? when(item.done_at) : L('尚未公开', 'not yet disclosed');
  const gap = item.due_at && Math.abs((item.done_at ? parseTime(item.done_at) : Date.now()) - parseTime(item.due_at));
  const words = {
    late: [L('已逾期', 'Late'), gap && L(`晚了 ${span(gap)}`, `${span(gap)} late`)],
    overdue: [L('已超期未公开', 'Overdue'), gap && L(`已超过 ${span(gap)}`, `${span(gap)} overdue`)],
    too_short: [L('时限不足', 'Period too short'), gap && (item.advisory
      ? L(`比规定时限少了 ${span(gap)}`, `${span(gap)} short of the period`)
      : L(`比法定时限少了 ${span(gap)}`, `${span(gap)} short of the statutory period`))],
    on_time: [L('按时', 'On time'), null],
  }[state] ?? [state, null];
  const basis = basisOf(item);
  return h('li', { class: `item state-${state}`, 'data-testid': 'item', 'data-project': item.project },
    h('p', null, h('span', { class: `level ${state === 'on_time' ? 'good' : 'bad'}` }, words[0]), ' ',
      item.advisory && [h('span', { class: 'tag advisory', 'data-testid': 'advisory-tag' }, L('地方惯例', 'local practice')), ' '],
      h('a', { href: `/p/${encodeURIComponent(item.project)}`, 'data-testid': 'item-project' }, item.project_title || item.project)),
    h('p', null, pick(item.rule_name) || item.rule),
    h('p', { class: 'small' },
      item.kind === 'at_least' || state === 'too_short'
        ? L(`最早可在 ${due}，实际 ${done}`, `Not before ${due}; done ${done}`)
        : L(`应于 ${due} 前，实际 ${done}`, `Due ${due}; done ${done}`),
      words[1] ? ` · ${words[1]}` : ''),
    basis && h('p', { class: 'small muted' }, basis));
}

/** `thing[key]` in the reader's language: `<key>_en` in English where the server has one. */
const english = (thing, key) => (current() === 'en' && thing[`${key}_en`]) || thing[key];
/** A basis as readers cite it: 第二十四条, never §24. */
const basisOf = (thing) => citation(english(thing, 'basis'));
/** The same as a span marked Chinese when no English was there to show. */
const shown = (thing, key) => {
  const text = key === 'basis' ? basisOf(thing) : english(thing, key);
  return english(thing, key) === thing[key] ? h('span', { lang: 'zh-CN' }, text) : h('span', null, text);
};

function catalogItem(item) {
  const row = (term, value) => value && [h('dt', null, term), h('dd', null, value)];
  return h('li', null, h('details', null,
    h('summary', null, h('span', { class: 'title' }, item.name.at(-1)), h('span', { class: 'small muted' }, ` ${item.time_limit}`)),
    h('dl', { class: 'data' },
      row(L('事项', 'Item'), item.name.join(' › ')),
      row(L('公开内容', 'Content'), item.content),
      row(L('公开依据', 'Basis'), basisOf(item)),
      row(L('公开时限', 'Time limit'), item.time_limit),
      row(L('公开主体', 'Responsible'), item.body),
      row(L('公开渠道', 'Channel'), item.channel),
      row(L('公开对象', 'Audience'), item.audience),
      row(L('公开方式', 'Mode'), item.mode),
      row(L('公开层级', 'Level'), item.level?.join('、')),
      row(L('相关阶段', 'Stages'), item.stages?.map(stageName).join('、')),
      row(L('编号', 'Code'), item.code))));
}

function rule(r) {
  const unit = r.unit === 'workday' ? L('个工作日', ' working days') : L('日', ' days');
  const after = r.kind === 'at_least' && r.after_period ? L('，期满后方可进行下一步', ', the next step only once they are over') : '';
  // A response rule (回应: answering an enquiry or a disclosure request) may allow one extension.
  const extension = r.extension ? L(`，可延长一次，最多 ${r.extension} 个工作日`, `; one extension of at most ${r.extension} working days`) : '';
  const applies = appliesWhen(r.applies_when);
  return h('li', { 'data-rule': r.id },
    h('p', null, h('strong', null, r.category === 'all' ? L('全部类别', 'All categories') : categoryName(r.category)), ' ', shown(r, 'name')),
    (r.advisory || applies) && h('p', { class: 'small', 'data-testid': 'applies' },
      r.advisory && h('span', { class: 'tag advisory', 'data-testid': 'advisory-tag' }, L('地方惯例（非法定）', 'local practice, not law')),
      r.advisory && applies && ' ', applies),
    h('p', { class: 'small muted' },
      `${r.kind === 'at_least' ? L('不少于', 'at least') : L('不超过', 'within')} ${r.amount}${unit}${after}${extension} · `,
      shown(r, 'basis'),
      CONFIDENCE[r.confidence] && [' · ', h('span', { class: `confidence ${r.confidence}`, 'data-testid': 'confidence' }, CONFIDENCE[r.confidence]())]));
}

/** How sure a limit is, by what was read where (rules.toml `confidence`). */
const CONFIDENCE = {
  statute: () => L('✔ 已核对法条原文', '✔ checked against the statute'),
  secondary: () => L('◐ 二手来源', '◐ secondary source'),
  memory: () => L('○ 待核实', '○ not yet verified'),
};

// The facts a rule's applies_when reads, and the values it names, in words.
const TERMS = {
  公开招标: 'open tendering', 邀请招标: 'invited tendering', 产权转让: 'property rights transfers',
  行政机关: 'administrative organs', 法律法规授权组织: 'bodies authorised by law',
};
const terms = (value) => {
  const order = Object.keys(TERMS);
  const rank = (v) => (order.includes(v) ? order.indexOf(v) : order.length);
  const values = [value].flat().map(String).sort((x, y) => rank(x) - rank(y));
  return L(values.join('、'), values.map((v) => TERMS[v] ?? v).join(', '));
};
const CONDITIONS = {
  must_tender: (yes) => (yes ? L('仅依法必须招标的项目', 'Only projects that must be tendered by law')
    : L('仅非依法必须招标的项目', 'Only projects the law does not require to be tendered')),
  method: (v) => L(`仅${terms(v)}`, `Only ${terms(v)}`),
  deal: (v) => L(`仅${terms(v)}`, `Only ${terms(v)}`),
  control_transfer: (yes) => (yes ? L('仅导致实际控制权转移的转让', 'Only transfers that change who controls the company')
    : L('仅不导致实际控制权转移的转让', 'Only transfers that leave control where it is')),
  agency_kind: (v) => L(`仅${terms(v)}`, `Only ${terms(v)}`),
};

/** When a rule applies, in words: null when it always does. */
function appliesWhen(conditions) {
  const said = Object.entries(conditions ?? {})
    .map(([fact, value]) => CONDITIONS[fact]?.(value) ?? `${fact}: ${[value].flat().join(L('、', ', '))}`);
  return said.length ? h('span', { class: 'applies', 'data-testid': 'applies-when' }, said.join(L('；', '; '))) : null;
}

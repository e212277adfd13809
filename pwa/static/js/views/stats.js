// `/stats`: statistics (统计分析) for journalists and evaluators — publications by
// month, projects by category and stage, amounts, competition, time from notice
// to award, on-time disclosure and answers to the public. Every chart is inline
// SVG drawn here (no third-party script), with its numbers in a table beside it
// (a screen reader's way in, and anyone's who wants the figures) and a CSV link.
import { h, money, number, showingCopy, failure } from '../ui.js';
import { L } from '../i18n.js';
import { navigate } from '../router.js';
import { load } from '../api.js';
import { allCategories, allAgencies, categoryName, stageName, agencyName } from '../vocab.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 320; // the viewBox's width: the chart scales to the column, never wider
const FILTERS = ['year', 'category', 'agency'];

/** An SVG element (h() makes HTML ones). */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs ?? {})) if (value != null) el.setAttribute(key, value);
  el.append(...children.flat(Infinity).filter((c) => c != null && c !== false));
  return el;
}

let figures = 0; // ids of the charts' titles, unique on the page

export default async function stats(main, ctx) {
  const chosen = {};
  for (const name of FILTERS) {
    const value = ctx.query.get(name) ?? '';
    if (value && (name !== 'year' || /^\d{4}$/.test(value))) chosen[name] = value;
  }
  const query = new URLSearchParams(chosen).toString();
  main.replaceChildren(h('h1', { tabindex: -1 }, L('统计分析', 'Statistics')),
    h('p', { class: 'lead' }, L('交易项目、公开信息、成交金额、竞争程度、办理时长和按时公开情况，均由公开发布的信息统计得出。',
      'Transactions, publications, amounts, competition, time to award and on-time disclosure, all counted from what was published.')));
  let answer;
  try {
    answer = await load(`/api/stats${query ? `?${query}` : ''}`, `stats:${query}`);
  } catch (error) {
    if (!ctx.signal.aborted) main.append(failure(error, () => stats(main, ctx)));
    return;
  }
  if (ctx.signal.aborted) return;
  showingCopy(answer.cached);
  const data = answer.data;
  const csv = (table) => `/api/stats/${table}.csv${query ? `?${query}` : ''}`;
  const total = data.totals;
  const byCategory = (rows, value) => rows.map((r) => ({ label: categoryName(r.category), value: value(r) }));

  main.append(
    filterForm(chosen, data),
    h('p', { class: 'small muted' }, L(`统计截至 ${data.as_of.slice(0, 16).replace('T', ' ')}，共 ${number(data.log_head)} 条公开信息。金额单位：元（人民币）。`,
      `As of ${data.as_of.slice(0, 16).replace('T', ' ')}, ${number(data.log_head)} publications. Amounts in yuan (CNY).`),
    ' ', h('a', { href: '/api/openapi.json' }, L('接口说明', 'API'))),
    summary(total),
    chart({
      id: 'events-by-month', table: 'events_by_month', csv,
      title: L('每月公开信息数', 'Publications by month'),
      note: L('按发布月份（北京时间）统计每条公开信息。', 'Every event, by the month it was published (Beijing time).'),
      columns: data.events_by_month.map((r) => ({ label: r.month, value: r.events })),
      head: [L('月份', 'Month'), L('公开信息', 'Publications')],
      rows: data.events_by_month.map((r) => [r.month, number(r.events)]),
    }),
    chart({
      id: 'projects-by-category', table: 'projects_by_stage', csv,
      title: L('各类交易项目数', 'Transactions by category'),
      note: L('按首次公告月份计入；表中按当前阶段细分。', 'Counted in the month of their first notice; the table splits them by current stage.'),
      bars: sumBy(data.projects_by_stage, 'projects').map((r) => ({ label: categoryName(r.category), value: r.projects, text: number(r.projects) })),
      head: [L('类别', 'Category'), L('阶段', 'Stage'), L('项目数', 'Projects')],
      rows: data.projects_by_stage.map((r) => [categoryName(r.category), stageName(r.stage, r.category), number(r.projects)]),
    }),
    chart({
      id: 'projects-by-month', table: 'projects_by_month', csv,
      title: L('每月新增交易项目', 'New transactions by month'),
      columns: sumBy(data.projects_by_month, 'projects', 'month').map((r) => ({ label: r.month, value: r.projects })),
      head: [L('月份', 'Month'), L('类别', 'Category'), L('项目数', 'Projects')],
      rows: data.projects_by_month.map((r) => [r.month, categoryName(r.category), number(r.projects)]),
    }),
    chart({
      id: 'amounts', table: 'amounts', csv,
      title: L('各类成交金额合计', 'Award amounts by category'),
      note: L('成交金额取中标/成交结果公告的金额（更正后的为准）；预算取项目登记的人民币预算。', 'The award notice’s amount (as corrected); budgets as registered, in CNY.'),
      bars: byCategory(data.amounts, (r) => r.award_sum ?? 0).map((b) => ({ ...b, text: money(b.value) })),
      head: [L('类别', 'Category'), L('项目', 'Projects'), L('预算合计', 'Budgets'), L('预算中位数', 'Median budget'),
        L('成交数', 'Awards'), L('成交合计', 'Awarded'), L('成交中位数', 'Median award')],
      rows: data.amounts.map((r) => [categoryName(r.category), number(r.projects), money(r.budget_sum), money(r.budget_median),
        number(r.award_count), money(r.award_sum), money(r.award_median)]),
    }),
    chart({
      id: 'competition', table: 'competition', csv,
      title: L('投标人数分布', 'Bidders per procedure'),
      note: L('只有一家投标即没有竞争，值得关注。', 'One bidder means no competition: worth a look.'),
      bars: [['bidders_0', '0'], ['bidders_1', '1'], ['bidders_2', '2'], ['bidders_3_5', '3–5'], ['bidders_6_plus', '6+']]
        .map(([key, label]) => {
          const value = data.competition.reduce((sum, r) => sum + r[key], 0);
          return { label: L(`${label} 家`, `${label} bidders`), value, text: number(value), warn: key === 'bidders_1' };
        }),
      head: [L('类别', 'Category'), L('有人数的项目', 'Counted'), L('平均', 'Mean'), '0', '1', '2', '3–5', '6+'],
      rows: data.competition.map((r) => [categoryName(r.category), number(r.counted), r.mean_bidders ?? '—',
        r.bidders_0, r.bidders_1, r.bidders_2, r.bidders_3_5, r.bidders_6_plus]),
    }),
    chart({
      id: 'durations', table: 'durations', csv,
      title: L('从公告到定标（中位数，天）', 'Days from notice to award (median)'),
      note: L('流标/终止的项目单独计数。', 'Failed procedures are counted apart.'),
      bars: data.durations.filter((r) => r.median_days != null)
        .map((r) => ({ label: categoryName(r.category), value: r.median_days, text: L(`${r.median_days} 天`, `${r.median_days} d`) })),
      head: [L('类别', 'Category'), L('已定标', 'Awarded'), L('流标/终止', 'Failed'), L('流标率', 'Failure rate'), L('中位天数', 'Median days')],
      rows: data.durations.map((r) => [categoryName(r.category), number(r.awarded), number(r.failed), percent(r.failure_rate), r.median_days ?? '—']),
    }),
    chart({
      id: 'on-time', table: 'on_time', csv,
      title: L('按时公开率', 'On-time disclosure'),
      note: L('法定时限事项中按时公开的比例（考核口径）。', 'Share of statutory items disclosed on time (the scorecard’s figures).'),
      bars: data.on_time.filter((r) => r.on_time_rate != null)
        .map((r) => ({ label: categoryName(r.category), value: r.on_time_rate * 100, max: 100, text: percent(r.on_time_rate), warn: r.on_time_rate < 0.9 })),
      head: [L('类别', 'Category'), L('应公开', 'Due'), L('按时', 'On time'), L('逾期', 'Late'), L('时限不足', 'Too short'), L('超期未公开', 'Overdue'), L('按时率', 'Rate')],
      rows: data.on_time.map((r) => [categoryName(r.category), r.due, r.on_time, r.late, r.too_short, r.open_breaches, percent(r.on_time_rate)]),
    }),
    chart({
      id: 'answers', table: 'answers', csv,
      title: L('咨询与依申请公开的按时答复率', 'Enquiries and requests answered on time'),
      bars: data.answers.filter((r) => r.on_time_rate != null)
        .map((r) => ({ label: `${agencyName(r.agency)} · ${kindName(r.kind)}`, value: r.on_time_rate * 100, max: 100, text: percent(r.on_time_rate), warn: r.on_time_rate < 0.9 })),
      head: [L('机构', 'Agency'), L('类型', 'Kind'), L('收到', 'Received'), L('按时答复', 'On time'), L('逾期', 'Late'), L('办理中', 'Open'), L('按时率', 'Rate'), L('中位天数', 'Median days')],
      rows: data.answers.map((r) => [agencyName(r.agency), kindName(r.kind), r.received, r.answered_on_time, r.late, r.open, percent(r.on_time_rate), r.median_days ?? '—']),
    }),
  );
}

const percent = (rate) => (rate == null ? '—' : `${Math.round(rate * 1000) / 10}%`);
const kindName = (kind) => (kind === 'enquiries' ? L('咨询', 'enquiries') : L('依申请公开', 'requests'));

/** Rows summed by `key` (category unless named): [{[key], [field]}], in first-seen order. */
function sumBy(rows, field, key = 'category') {
  const sums = new Map();
  for (const r of rows) sums.set(r[key], (sums.get(r[key]) ?? 0) + r[field]);
  return [...sums].map(([k, v]) => ({ [key]: k, [field]: v }));
}

function filterForm(chosen, data) {
  const years = new Set([Number(data.as_of.slice(0, 4))]);
  for (const r of data.events_by_month) years.add(Number(r.month.slice(0, 4)));
  if (chosen.year) years.add(Number(chosen.year));
  const select = (name, label, options) => {
    const el = h('select', { id: `s-${name}`, name, 'data-testid': `filter-${name}` },
      options.map(([value, text]) => h('option', { value, selected: value === (chosen[name] ?? '') }, text)));
    el.addEventListener('change', () => {
      const next = { ...chosen, [name]: el.value };
      for (const key of Object.keys(next)) if (!next[key]) delete next[key];
      const query = new URLSearchParams(next).toString();
      navigate(query ? `/stats?${query}` : '/stats', { replace: true });
    });
    return h('div', { class: 'field' }, h('label', { for: `s-${name}` }, label), el);
  };
  return h('div', { class: 'filters stats-filters' },
    select('year', L('年份', 'Year'), [['', L('全部年份', 'All years')], ...[...years].sort().reverse().map((y) => [String(y), String(y)])]),
    select('category', L('类别', 'Category'), [['', L('全部类别', 'All categories')], ...allCategories().map((c) => [c.code, categoryName(c.code)])]),
    select('agency', L('机构', 'Agency'), [['', L('全部机构', 'All agencies')], ...allAgencies().map((a) => [a.code, agencyName(a.code)])]));
}

function summary(t) {
  const item = (label, value) => h('div', null, h('dt', null, label), h('dd', null, value));
  return h('dl', { class: 'totals', 'data-testid': 'totals' },
    item(L('交易项目', 'Transactions'), number(t.projects)),
    item(L('公开信息', 'Publications'), number(t.events)),
    item(L('成交金额合计', 'Total awarded'), money(t.award_sum) || '—'),
    item(L('公告到定标中位数', 'Median days to award'), t.median_days == null ? '—' : L(`${t.median_days} 天`, `${t.median_days} days`)),
    item(L('平均投标人数', 'Mean bidders'), t.mean_bidders ?? '—'),
    item(L('仅一家投标', 'Single bidder'), number(t.single_bidder)),
    item(L('流标率', 'Failure rate'), percent(t.failure_rate)),
    item(L('按时公开率', 'On time'), percent(t.on_time_rate)),
    item(L('咨询按时答复率', 'Enquiries on time'), percent(t.enquiries.on_time_rate)));
}

/**
 * A <figure>: the chart (bars, or columns by month), its caption, a note, and in a
 * <details> the same figures as a table, with a link to the table's CSV.
 */
function chart({ id, table, csv, title, note, bars, columns, head, rows }) {
  const n = ++figures;
  const titleId = `chart-title-${n}`;
  const empty = !(bars ?? columns).some((b) => b.value > 0);
  const drawing = empty ? h('p', { class: 'muted' }, L('暂无数据。', 'No data yet.'))
    : (bars ? barChart(bars, title, titleId) : columnChart(columns, title, titleId));
  return h('figure', { class: 'chart', id, 'data-testid': `chart-${id}` },
    h('figcaption', { id: `${titleId}-caption` }, h('h2', null, title)),
    note && h('p', { class: 'small muted' }, note),
    drawing,
    h('details', { class: 'data-table' },
      h('summary', null, L('数据表', 'Data table')),
      h('div', { class: 'table-scroll' },
        h('table', null, h('caption', null, title),
          h('thead', null, h('tr', null, head.map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', null, rows.length ? rows.map((r) => h('tr', null, r.map((c, i) => (i === 0 ? h('th', { scope: 'row' }, c) : h('td', null, String(c))))))
            : h('tr', null, h('td', { colspan: head.length }, L('暂无数据', 'No data')))))),
    ),
    h('p', { class: 'small' }, h('a', { href: csv(table), download: '', 'data-testid': `csv-${table}` }, L('下载 CSV（Excel 可直接打开）', 'Download CSV (opens in Excel)'))));
}

/** Horizontal bars, one per row: its label above, its value at the bar's end. */
function barChart(bars, title, titleId) {
  const row = 36;
  const max = Math.max(...bars.map((b) => b.max ?? b.value), 1);
  const height = bars.length * row + 4;
  const room = WIDTH - 70; // the value's text after the longest bar
  return s('svg', { viewBox: `0 0 ${WIDTH} ${height}`, width: '100%', role: 'img', 'aria-labelledby': titleId, class: 'bars', preserveAspectRatio: 'xMinYMin meet' },
    s('title', { id: titleId }, title),
    bars.map((b, i) => {
      const y = i * row;
      const w = Math.max(b.value > 0 ? 2 : 0, (b.value / max) * room);
      return s('g', null,
        s('text', { x: 0, y: y + 12, class: 'c-label' }, b.label),
        s('rect', { x: 0, y: y + 17, width: w.toFixed(1), height: 13, rx: 2, class: b.warn ? 'c-bar c-warn' : 'c-bar' },
          s('title', null, `${b.label}: ${b.text ?? b.value}`)),
        s('text', { x: (w + 4).toFixed(1), y: y + 28, class: 'c-value' }, b.text ?? String(b.value)));
    }));
}

/** Columns by month, oldest first: the first month of each year and the last one labelled. */
function columnChart(columns, title, titleId) {
  const height = 150;
  const base = 125;
  const max = Math.max(...columns.map((c) => c.value), 1);
  const step = (WIDTH - 8) / Math.max(columns.length, 1);
  // The first month, each January and the last, unless too close to the one labelled before.
  let free = 0;
  const labelled = (c, i, x) => {
    const wanted = i === 0 || i === columns.length - 1 || c.label.endsWith('-01');
    const at = Math.min(x, WIDTH - 44);
    if (!wanted || at < free) return null;
    free = at + 48;
    return at;
  };
  return s('svg', { viewBox: `0 0 ${WIDTH} ${height}`, width: '100%', role: 'img', 'aria-labelledby': titleId, class: 'columns' },
    s('title', { id: titleId }, title),
    s('text', { x: 0, y: 10, class: 'c-value' }, L(`最高 ${number(max)}`, `max ${number(max)}`)),
    s('line', { x1: 0, x2: WIDTH, y1: base + 0.5, y2: base + 0.5, class: 'c-axis' }),
    columns.map((c, i) => {
      const hgt = (c.value / max) * (base - 16);
      const x = 4 + i * step;
      return s('g', null,
        s('rect', { x: (x + step * 0.1).toFixed(1), y: (base - hgt).toFixed(1), width: (step * 0.8).toFixed(1), height: hgt.toFixed(1), class: 'c-bar' },
          s('title', null, `${c.label}: ${number(c.value)}`)),
        ((at) => at != null && s('text', { x: at.toFixed(1), y: base + 16, class: 'c-label' }, c.label))(labelled(c, i, x)));
    }));
}
